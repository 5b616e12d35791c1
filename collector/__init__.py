"""Retrace collector."""
