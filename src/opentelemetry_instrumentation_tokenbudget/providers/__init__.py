"""Thin per-provider adapters: which SDK methods to wrap, and where their usage is."""
