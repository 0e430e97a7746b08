"""Help text shared by the commands: worked examples under every command's ``--help``."""

from __future__ import annotations


def examples(*commands: str) -> str:
    """An epilog listing ``commands`` one per line (typer keeps the lines apart when blank lines separate them)."""
    return "Examples:\n\n" + "\n\n".join(f"  $ {c}" for c in commands)
