"""SEED-V's released features through `run_extract` into stores, then fusion: the class names the reader knows
travel in the store manifest and name the classes of the results."""

from __future__ import annotations

from pathlib import Path

from fuse.config import FuseConfig
from fuse.run import run_fuse
from pipelines.jobs import ExtractConfig, run_extract
from store import open_store


def test_seedv_stores_carry_class_names_into_fusion(tmp_path: Path) -> None:
    from extract.fixtures.seedv import write_seedv

    root = write_seedv(tmp_path / "SEED-V", subjects=2, trials=15, seed=0)
    result = run_extract(ExtractConfig(dataset="seedv", root=root, out_dir=tmp_path / "cache", gpu=(-1,),
                                       progress=False))
    de, eye = open_store(result.store("eeg_de").path), open_store(result.store("eye").path)
    names = ["disgust", "fear", "sad", "neutral", "happy"]
    assert de.manifest.label_names == {"emotion": names} and eye.manifest.label_names == {"emotion": names}
    assert de.dim == 310 and eye.dim == 33
    assert {it.split("/")[1] for it in de.items()} == {"1", "2"} and len(de.items()) == 2 * 45

    res = run_fuse(FuseConfig(cache=str(tmp_path / "cache" / "seedv"), strategy="late", target="emotion",
                              protocol="seedv-3fold"), write=False)
    assert res.metrics["classes"] == names
    assert res.metrics["n_folds"] == 2 * 3
    assert res.metrics["modalities"] == ["eeg", "eye"]  # SEED-V fuses EEG and eye movements, named as such
    assert {role: s["kind"] for role, s in res.table.sources.items()} == {"eeg": "eeg_de", "eye": "eye"}
    eye = run_fuse(FuseConfig(cache=str(tmp_path / "cache" / "seedv"), strategy="eye", target="emotion",
                              protocol="seedv-3fold", save_final=False), write=False)
    assert eye.metrics["modalities"] == ["eye"] and eye.metrics["rows"]["used"] == res.metrics["rows"]["used"]
