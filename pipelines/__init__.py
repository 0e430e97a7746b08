"""Wiring of the two stages: typed config, the ``pipeline`` CLI, job planning and execution."""

__version__ = "0.1.0"
