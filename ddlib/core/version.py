"""The package version (one place; provenance records it)."""

__version__ = "0.1.0"
