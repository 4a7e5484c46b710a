"""The spend ledger: one row per call in a SQLite file, written off the caller's thread."""
