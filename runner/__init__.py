"""Retrace runner."""
