"""Pickled dataset files (DEAP .dat, SEED-V npz) are loaded with a restricted unpickler: a payload never runs."""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from extract.datasets import DatasetError, create_dataset
from extract.fixtures.seedv import write_pickled_npz
from extract.safe_pickle import UnsafePickleError, safe_loads


class _System:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Exec:
    """Unpickling this calls ``builtins.exec(code)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


def _payloads(marker: Path) -> list[object]:
    return [_System(f"touch {marker}"), _Exec(f"open({str(marker)!r}, 'w').write('pwned')")]


@pytest.mark.parametrize("kind", ["system", "exec"])
def test_malicious_dat_is_refused_and_never_runs(deap_root: Path, tmp_path: Path, kind: str) -> None:
    root = tmp_path / "DEAP"
    shutil.copytree(deap_root, root, ignore=shutil.ignore_patterns("*.avi"))
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[0 if kind == "system" else 1]
    dat = root / "data_preprocessed_python" / "s01.dat"
    # a real-looking dict whose labels carry the payload, written the Python 2 way (protocol 2)
    with open(dat, "wb") as fh:
        pickle.dump({"labels": payload, "data": np.zeros((3, 40, 640))}, fh, protocol=2)
    reader = create_dataset("deap", root=root)
    assert {it.subject for it in reader.items()} == {"s02"}  # the bad subject is skipped, the rest goes on
    message = reader.bad_files()[str(dat)]
    assert message.startswith(str(dat)) and "refused to unpickle global" in message and "\n" not in message
    assert (".system" in message) if kind == "system" else ".exec" in message  # e.g. posix.system, __builtin__.exec
    lazy = create_dataset("deap", root=root, labels_from="ratings")
    with pytest.raises(DatasetError, match="refused to unpickle global"):
        lazy.eeg(lazy.items()[0])
    assert not marker.exists()


@pytest.mark.parametrize("member", ["data", "label"])
def test_malicious_seedv_npz_is_refused_and_never_runs(seedv_root: Path, tmp_path: Path, member: str) -> None:
    root = tmp_path / "SEED-V"
    shutil.copytree(seedv_root, root)
    marker = tmp_path / "pwned"
    good = {k: np.zeros(3) for k in range(3)}
    payload = {0: _System(f"touch {marker}")}
    path = root / "EEG_DE_features" / "1_123.npz"
    write_pickled_npz(path, payload if member == "data" else good, payload if member == "label" else good)
    reader = create_dataset("seedv", root=root)
    items = reader.items()
    if member == "label":  # listing reads the labels: subject 1 is skipped, subject 2 remains
        assert {it.subject for it in items} == {"2"}
        assert "refused to unpickle global" in reader.bad_files()[str(path)]
    else:
        item = next(it for it in items if it.subject == "1")
        with pytest.raises(DatasetError, match=r"1_123\.npz\[data\]: refused to unpickle global"):
            reader.features(item, "eeg_de")
    assert not marker.exists()


def test_allow_list_admits_numpy_arrays_only() -> None:
    data = {"a": np.arange(6.0).reshape(2, 3), "b": np.float32(2.5), 3: [np.int64(4)], "s": b"\x00\xff"}
    for protocol in (2, 4, 5):
        out = safe_loads(pickle.dumps(data, protocol=protocol), source="mem")
        np.testing.assert_array_equal(out["a"], data["a"])
        assert out["b"] == np.float32(2.5) and out[3] == [4] and out["s"] == b"\x00\xff"
    for forbidden in (Path("x"), {1, 2}.__class__, np.random.default_rng(0)):
        with pytest.raises(UnsafePickleError, match="^mem: refused to unpickle global"):
            safe_loads(pickle.dumps(forbidden, protocol=2), source="mem")
    # _codecs.encode is admitted only for latin-1 (what Python 3's protocol 2 writes for bytes)
    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafePickleError, match="only latin1"):
        safe_loads(crafted, source="mem")
