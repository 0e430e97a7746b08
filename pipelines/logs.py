"""Logging set-up shared by every command: rich output on stderr, -v for debug, -q for warnings only."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Configure the root logger once; ``verbose`` >= 1 is DEBUG, ``quiet`` is WARNING."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False, markup=False)],
        force=True,
    )
    for noisy in ("distributed", "numcodecs", "urllib3", "PIL", "matplotlib", "asyncio", "filelock", "h5py"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
