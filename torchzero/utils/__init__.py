"""Helpers shared across the package."""
