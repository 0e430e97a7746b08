"""Logging set-up shared by every command: rich output on stderr, -v for debug, -q for warnings only."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Configure the root logger once; ``verbose`` >= 1 is DEBUG, ``quiet`` is WARNING. On a terminal: rich
    output; otherwise (a log file, a pipe, a cluster job): one plain timestamped line per message, never wrapped."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler()  # sys.stderr as it is now (a test runner's capture, a redirect)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("distributed", "numcodecs", "urllib3", "PIL", "matplotlib", "asyncio", "filelock", "h5py"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
