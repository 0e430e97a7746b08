"""The dependency direction of DESIGN.md, checked on the source: ``pipelines -> {extract, fuse} -> store``.

Every ``import``/``from ... import`` in a package's modules (lazy ones inside functions included) is read with
``ast``; a back-edge (store importing fuse, fuse importing extract, ...) or torch in ``store/`` fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("store", "extract", "fuse", "pipelines")
# What each package may import of the project's packages (itself always).
ALLOWED = {
    "store": set(),
    "extract": {"store"},
    "fuse": {"store"},
    "pipelines": {"store", "extract", "fuse"},
}
FORBIDDEN_THIRD_PARTY = {"store": {"torch", "torchvision", "transformers"}}


def imported_top_levels(source: str) -> set[str]:
    """Top-level module names imported anywhere in ``source`` (absolute imports only; relative ones stay inside)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(package: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        imported = imported_top_levels(path.read_text())
        for name in sorted(imported & set(PACKAGES) - ALLOWED[package] - {package}):
            found.append(f"{path.relative_to(root)} imports {name}")
        for name in sorted(imported & FORBIDDEN_THIRD_PARTY.get(package, set())):
            found.append(f"{path.relative_to(root)} imports {name}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_back_edges(package: str) -> None:
    assert violations(package) == []


def test_a_back_edge_is_caught(tmp_path: Path) -> None:
    (tmp_path / "fuse").mkdir()
    (tmp_path / "fuse" / "bad.py").write_text("def f():\n    from extract.backbones import create_backbone\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "bad.py").write_text("import torch.nn as nn\nfrom fuse import data\n")
    assert violations("fuse", tmp_path) == ["fuse/bad.py imports extract"]
    assert violations("store", tmp_path) == ["store/bad.py imports fuse", "store/bad.py imports torch"]
