"""``pipeline extract`` end to end on the fixture DEAP: real MTCNN + tiny-clip face path and DE EEG features.

2 subjects x 3 trials x 2 s (small frames, 25 fps); s02's last trial has no video (EEG-only). The face path runs at
2 fps with MTCNN's smallest face raised to 40 px so the CPU stays quick; everything else is the default path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from extract_fakes import assert_same_store, store_table

from pipelines.jobs import ExtractConfig, run_extract
from pipelines.jobs.progress import summary_path

FACE_OPTIONS = {"detector_options": {"min_face_size": 40}}


@pytest.fixture(scope="module")
def deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures.deap import write_deap

    root = tmp_path_factory.mktemp("deap") / "DEAP"
    return write_deap(root, subjects=2, trials=3, seconds=2.0, seed=0, frame_size=(320, 256), fps=25.0)


def deap_cfg(root: Path, out: Path, **kw: object) -> ExtractConfig:
    base: dict[str, object] = dict(dataset="deap", root=root, out_dir=out, detector="mtcnn", backbone="tiny-clip",
                                   fps=2.0, face_options=FACE_OPTIONS, gpu=(-1,), progress=False)
    base.update(kw)
    return ExtractConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def serial_run(deap: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("serial")
    return run_extract(deap_cfg(deap, out))


def test_face_and_eeg_stores_end_to_end(serial_run) -> None:  # noqa: ANN001
    face, eeg = serial_run.store("face"), serial_run.store("eeg")
    assert face.path.name.startswith("face-mtcnn-tiny-clip-2fps-") and face.path.parent.name == "deap"
    assert eeg.path.name.startswith("eeg-de-1s-")
    assert face.missing == ["deap/s02/trial03"] and eeg.missing == []  # EEG-only item: no face item, reported

    ft = store_table(face.path)
    keys = sorted(set(ft["item"]))
    assert keys == ["deap/s01/trial01", "deap/s01/trial02", "deap/s01/trial03", "deap/s02/trial01",
                    "deap/s02/trial02"]
    for key in keys:
        sel = ft["item"] == key
        assert sel.sum() == 4  # 2 s at 2 fps
        np.testing.assert_allclose(ft["t_start_s"][sel], [0.0, 0.5, 1.0, 1.5], atol=0.021)  # pts of 25 fps frames
        t_end = ft["t_end_s"][sel].to_numpy() if hasattr(ft["t_end_s"], "to_numpy") else ft["t_end_s"][sel]
        t_start = ft["t_start_s"][sel].to_numpy() if hasattr(ft["t_start_s"], "to_numpy") else ft["t_start_s"][sel]
        np.testing.assert_allclose(t_end[:-1], t_start[1:])  # t_end_s = the next sample's time
        np.testing.assert_allclose(t_end[-1] - t_start[-1], 0.5, atol=0.021)
    found = ft["q_face_found"].astype(bool)
    assert found.mean() > 0.9  # the fixture's face is found by a real detector
    assert (ft["q_det_score"][found] > 0.9).all() and np.isnan(ft["q_det_score"][~found]).all()
    assert np.isfinite(ft["embeddings"][found]).all() and np.isnan(ft["embeddings"][~found]).all()
    assert ft["embeddings"].shape[1] == 32 and ft["embeddings"].dtype == np.float16
    assert {"label_valence", "label_arousal"} <= set(ft)

    et = store_table(eeg.path)
    assert sorted(set(et["item"])) == keys + ["deap/s02/trial03"]
    assert len(et["item"]) == 6 * 2  # two 1 s windows after the 3 s baseline
    np.testing.assert_allclose(et["t_start_s"][et["item"] == "deap/s01/trial01"], [0.0, 1.0])
    assert et["embeddings"].shape[1] == 32 * 5  # 32 channels x 5 bands

    # The shared time base: face frames of second 1 of a trial pair with EEG window [1, 2) of the same trial.
    fsel = (ft["item"] == "deap/s01/trial01") & (ft["t_start_s"] >= 1.0)
    esel = (et["item"] == "deap/s01/trial01") & (et["t_start_s"] == 1.0)
    assert np.allclose(ft["label_valence"][fsel], et["label_valence"][esel][0])

    summary = json.loads(summary_path(face.path).read_text())
    assert summary["items"]["done"] == 5 and summary["no_media_items"] == ["deap/s02/trial03"]
    assert {"decode", "detect", "align", "embed", "write"} <= set(summary["stage_s"])
    assert summary["rows"] == 20 and summary["rows_per_s"] > 0


def test_eeg_face_and_peripheral_fuse_as_three_modalities(serial_run) -> None:  # noqa: ANN001
    from fuse.config import FuseConfig
    from fuse.run import run_fuse

    peripheral = serial_run.store("peripheral")
    assert peripheral.path.name.startswith("peripheral-") and peripheral.missing == []
    pt = store_table(peripheral.path)
    assert pt["embeddings"].shape == (12, 8 * 5)  # 6 trials x two 1 s windows; 8 channels x 5 statistics
    stores = tuple(str(serial_run.store(kind).path) for kind in ("eeg", "face", "peripheral"))
    for strategy in ("late", "early", "peripheral"):
        res = run_fuse(FuseConfig(stores=stores, strategy=strategy, target="valence", protocol="loso",
                                  save_final=False), write=False)
        assert set(res.table.roles) == {"eeg", "face", "peripheral"}
        assert res.metrics["modalities"] == (["peripheral"] if strategy == "peripheral" else
                                             ["eeg", "face", "peripheral"])
        assert res.metrics["n_folds"] == 2 and len(res.predictions) == res.metrics["rows"]["used"]
        if strategy == "late":  # the EEG-only trial (no video) is scored from its EEG and peripheral rows
            assert res.metrics["rows"]["late_rows_without_face"] == 2
            assert "deap/s02/trial03" in set(res.predictions["item"])
        if strategy == "early":  # early fusion needs every modality: the EEG-only trial drops out
            assert res.metrics["rows"]["dropped_missing_face"] == 2


def test_corrupt_video_fails_alone_then_retry_failed_redoes_it(deap: Path, serial_run, tmp_path: Path) -> None:  # noqa: ANN001
    video = deap / "face_video" / "s01" / "s01_trial02.avi"
    good = video.read_bytes()
    broken = bytearray(good)
    broken[len(good) // 2 :] = bytes(len(good) - len(good) // 2)  # same size: the fixed file keeps the store name
    video.write_bytes(bytes(broken))
    try:
        first = run_extract(deap_cfg(deap, tmp_path, modality="face"))
    finally:
        video.write_bytes(good)
    s = first.summaries[0]
    assert s["items"]["done"] == 4 and list(s["failures"]) == ["deap/s01/trial02"]
    assert "truncated" in s["failures"]["deap/s01/trial02"]

    retried = run_extract(deap_cfg(deap, tmp_path, modality="face", retry_failed=True))
    assert [it.key for it in retried.store("face").todo] == ["deap/s01/trial02"]
    assert retried.summaries[0]["items"]["retried_ok"] == 1
    assert_same_store(retried.store("face").path, serial_run.store("face").path)


def test_feature_changing_options_write_new_stores(deap: Path, serial_run) -> None:  # noqa: ANN001
    out = serial_run.store("face").path.parents[1]
    old_stores = [serial_run.store("face").path, serial_run.store("eeg").path]
    before = {p: p.stat().st_mtime_ns for store in old_stores for p in [store, *store.rglob("*")]}
    other = run_extract(deap_cfg(deap, out, fps=1.0, eeg_window_s=2.0, limit=1))
    face, eeg = other.store("face"), other.store("eeg")
    assert face.path.name.startswith("face-mtcnn-tiny-clip-1fps-") and eeg.path.name.startswith("eeg-de-2s-")
    assert face.path != serial_run.store("face").path and eeg.path != serial_run.store("eeg").path
    assert len(store_table(face.path)["item"]) == 2 and len(store_table(eeg.path)["item"]) == 1
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before  # the old stores are untouched
    backbone = run_extract(deap_cfg(deap, out, backbone="tiny-vit", modality="face", limit=1, dry_run=True))
    assert backbone.store("face").path.name.startswith("face-mtcnn-tiny-vit-2fps-")


def test_dask_local_cluster_equals_the_serial_run(deap: Path, serial_run, tmp_path: Path) -> None:  # noqa: ANN001
    # Two dask workers as threads of this process (processes=False): the process variant (local:2) is tested on
    # the fake dataset in test_extract_jobs.py; here it would add two torch/transformers/MTCNN start-ups (~30 s on
    # this 2-core machine). Each worker thread builds its own models and writes its own segments.
    result = run_extract(deap_cfg(deap, tmp_path, scheduler="local-threads:2"))
    assert result.exit_code == 0 and result.summaries[0]["runner"] == "dask local-threads:2"
    for kind in ("face", "eeg"):
        assert result.store(kind).path.name == serial_run.store(kind).path.name
        assert_same_store(result.store(kind).path, serial_run.store(kind).path)
