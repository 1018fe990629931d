"""Passes: plain functions Graph → Graph (structural ones in :mod:`.structural`)."""
