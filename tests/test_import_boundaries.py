"""The dependency direction of DESIGN.md, checked on the source: ``pipelines -> {extract, fuse} -> store -> registry``.

Every ``import``/``from ... import`` in a package's modules (lazy ones inside functions included) is read with
``ast``; a back-edge (store importing fuse, fuse importing extract, registry importing anything of the project, ...)
or torch in ``store/`` or ``registry/`` fails the test, and so does an import cycle among ``store``'s own modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "store", "extract", "fuse", "pipelines")
# What each package may import of the project's packages (itself always); ``registry`` is the bottom layer.
ALLOWED = {
    "registry": set(),
    "store": {"registry"},
    "extract": {"registry", "store"},
    "fuse": {"registry", "store"},
    "pipelines": {"registry", "store", "extract", "fuse"},
}
TORCH = {"torch", "torchvision", "transformers"}
FORBIDDEN_THIRD_PARTY = {"registry": TORCH, "store": TORCH}


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


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (``from a.b import c`` names ``a.b.c`` when that is a module).

    A package's ``__init__`` that runs on the way to a submodule is not an edge: only the module named is.
    """
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in files)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package upwards
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in files else base)
        graph[name] = {t for t in targets if t in files} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets (each as the path that closes it); [] for an acyclic graph."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the walk's stack, 2 = done
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return found


def private_store_reads(path: Path) -> list[str]:
    """``store._x`` attribute reads in ``path``: what verify and gc must not do (they use public accessors)."""
    return sorted(
        f"{path.name}:{node.lineno} store.{node.attr}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "store"
        and node.attr.startswith("_")
    )


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


def test_registry_is_the_bottom_layer(tmp_path: Path) -> None:
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "__init__.py").write_text("import torch\ndef f():\n    from store import open_store\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "ok.py").write_text("from registry import Registry\n")
    assert violations("registry", tmp_path) == ["registry/__init__.py imports store", "registry/__init__.py imports torch"]
    assert violations("store", tmp_path) == []


def test_old_homes_re_export_the_moved_objects() -> None:
    """``store.registry`` and ``extract.face_extractor`` keep old imports working with the very same objects."""
    import registry
    import store.registry
    from extract.face.extractor import FaceEmbeddingExtractor
    from extract.face_extractor import FaceEmbeddingExtractor as OldFaceEmbeddingExtractor

    assert store.registry.Registry is registry.Registry
    assert store.registry.UnknownNameError is registry.UnknownNameError
    assert OldFaceEmbeddingExtractor is FaceEmbeddingExtractor


def test_store_modules_import_without_a_cycle() -> None:
    graph = import_graph("store")
    assert {"store.core", "store.reader", "store.verify", "store.gc"} <= set(graph)
    assert "store.reader" in graph["store.core"] and "store.verify" in graph["store.reader"]  # edges are seen
    assert cycles(graph) == []


def test_a_store_cycle_is_caught_also_through_a_lazy_import(tmp_path: Path) -> None:
    (tmp_path / "store" / "backends").mkdir(parents=True)
    (tmp_path / "store" / "__init__.py").write_text("from store.core import open_store\n")
    (tmp_path / "store" / "core.py").write_text("from store import reader\n")
    (tmp_path / "store" / "reader.py").write_text("def verify():\n    from .maintenance import verify_store\n")
    (tmp_path / "store" / "maintenance.py").write_text("def gc():\n    from store.core import open_store\n")
    (tmp_path / "store" / "backends" / "__init__.py").write_text("from . import zarr_backend\n")
    (tmp_path / "store" / "backends" / "zarr_backend.py").write_text("from ..layout import x\n")
    (tmp_path / "store" / "layout.py").write_text("import store.backends.zarr_backend\n")
    assert sorted(cycles(import_graph("store", tmp_path))) == [
        ["store.backends.zarr_backend", "store.layout", "store.backends.zarr_backend"],
        ["store.core", "store.reader", "store.maintenance", "store.core"],
    ]


@pytest.mark.parametrize("module", ["verify.py", "gc.py", "compaction.py"])
def test_verify_gc_and_compaction_read_the_store_through_public_accessors(module: str) -> None:
    assert private_store_reads(ROOT / "store" / module) == []


def test_a_private_store_read_is_caught(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def f(store):\n    return store._runs(None, 'item'), store.segments\n")
    assert private_store_reads(tmp_path / "bad.py") == ["bad.py:2 store._runs"]


def test_a_writer_is_not_a_store() -> None:
    """``StoreWriter`` holds a ``Store`` (composition) rather than inheriting the whole reader API."""
    tree = ast.parse((ROOT / "store" / "writer.py").read_text())
    writer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "StoreWriter")
    assert [ast.unparse(b) for b in writer.bases] == []
