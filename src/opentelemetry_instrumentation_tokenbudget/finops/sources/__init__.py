"""Readers that turn a source of spend data into `SpendRecord`s."""
