"""Trace store backends."""
