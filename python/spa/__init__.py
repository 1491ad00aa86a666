"""SPA: Structurally Prune Anything."""
__version__ = "0.1.0"
