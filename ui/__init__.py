"""Retrace ui."""
