"""Retrace replay."""
