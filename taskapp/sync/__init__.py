"""Incremental sync: the change log kept by database triggers, and signed sync tokens."""
