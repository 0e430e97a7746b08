"""``pipeline stores ls|info|verify|gc`` through typer's CliRunner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from store_testlib import make_item, make_manifest
from typer.testing import CliRunner

from pipelines.cli import app
from store import create_store


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    with create_store(tmp_path / "deap" / "face.store", make_manifest(), durable=False) as w:
        for i in range(3):
            w.write_item(make_item(f"s0{i % 2 + 1}/t{i}", 4, 8))
        w.mark_failed("s03/t9", "RuntimeError: no face found\ntraceback line")
    with create_store(tmp_path / "deap" / "eeg.store", make_manifest(kind="eeg", dim=4, dtype="float32"),
                      backend="hdf5", durable=False) as w:
        w.write_item(make_item("s01/t0", 2, 4))
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["stores", *args])
    return result.exit_code, result.output


def test_ls_lists_every_store(cache: Path) -> None:
    code, out = run("ls", str(cache))
    assert code == 0, out
    for text in ("deap/face.store", "deap/eeg.store", "face", "eeg", "zarr", "hdf5"):
        assert text in out
    face = next(line for line in out.splitlines() if "face.store" in line)
    assert " 3 " in face and " 1 " in face and " 12 " in face and " 8 " in face  # done, failed, rows, dim
    code, out = run("ls", str(cache / "nothing-here"))
    assert code == 0 and "no stores" in out


def test_info_shows_manifest_subjects_and_failures(cache: Path) -> None:
    code, out = run("info", str(cache / "deap" / "face.store"))
    assert code == 0, out
    assert '"extractor": "test/extractor"' in out and '"fps": 5.0' in out
    assert "s01" in out and "s02" in out and "per subject" in out
    assert "s03/t9" in out and "RuntimeError: no face found" in out and "traceback line" not in out
    code, out = run("info", str(cache / "nope"))
    assert code == 2 and "no store" in out


def test_verify_exit_codes(cache: Path) -> None:
    store = cache / "deap" / "face.store"
    code, out = run("verify", str(store))
    assert code == 0 and "ok" in out, out
    seg = next(p for p in (store / "segments").iterdir() if not p.name.startswith("."))
    shard = seg / "embeddings" / "c.0.0"
    data = bytearray(shard.read_bytes())
    data[5] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, out = run("verify", str(store))
    assert code == 1 and "checksum mismatch" in out and seg.name in out
    code, out = run("verify", "--no-checksums", str(store))
    assert code == 0, out


def test_gc_dry_run_then_remove(cache: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    from store.layout import hostname, sanitize_name

    leftover = cache / "deap" / "face.store" / "segments" / f".tmp~{sanitize_name(hostname())}~{proc.pid}~x.zarr"
    leftover.mkdir()
    (leftover / "zarr.json").write_text("{}")
    foreign = cache / "deap" / "eeg.store" / "segments" / ".tmp~otherhost~1~y.h5"
    foreign.write_bytes(b"partial")
    old = foreign.stat().st_mtime - 7200
    os.utime(foreign, (old, old))
    code, out = run("gc", str(cache), "--dry-run")
    assert code == 0 and "would remove" in out and leftover.name in out and foreign.name in out
    assert leftover.exists() and foreign.exists()
    code, out = run("gc", str(cache))
    assert code == 0 and "removed 2 path(s)" in out
    assert not leftover.exists() and not foreign.exists()
    code, out = run("gc", str(cache))
    assert "nothing to remove" in out
