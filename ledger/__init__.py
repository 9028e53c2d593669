"""Lunaria ledger core."""
