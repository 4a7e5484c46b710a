"""The `tokenbudget` command."""
