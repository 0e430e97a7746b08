"""The errors of a fuse run that mean bad input, not a bug: the CLI reports them in one line and exits 2.

Raise these where bad input is detected; any other exception out of a run is a bug and keeps its traceback.
"""

from __future__ import annotations


class FuseInputError(ValueError):
    """A request the inputs cannot serve: a config value, target, protocol or strategy that does not fit the data."""


class MissingExtraError(RuntimeError):
    """An optional dependency the run asks for is not installed; the message names the ``pip install`` extra."""
