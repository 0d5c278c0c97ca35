"""ftplan planner: pure, fast planning logic (no torch or transformers at import)."""

__version__ = "0.1.0"
