"""Cross-dataset protocol: train on one dataset's store, test on another's through a label map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuse.config import FuseConfig
from fuse.cross_dataset import LABEL_MAPS, map_probabilities, resolve_map, run_cross_dataset
from fuse.data import FuseDataError
from fuse.synthetic import planted_clips

FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
RAVDESS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
DFEW7 = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")


def test_probabilities_are_summed_through_the_map() -> None:
    mapping = resolve_map("dfew7-2", DFEW7, ("positive", "negative"))
    assert len(mapping) == 7
    proba = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]])
    out = map_probabilities(proba, DFEW7, ("positive", "negative"), mapping)
    np.testing.assert_allclose(out, [[0.7, 0.3]])
    fer = resolve_map("fer2013-ravdess", FER, RAVDESS)
    assert "calm" not in fer.values() and fer["fear"] == "fearful"
    with pytest.raises(FuseDataError, match="maps none"):
        resolve_map("fer2013-ravdess", ("x",), RAVDESS)
    assert set(LABEL_MAPS) >= {"fer2013-ravdess", "dfew7-2"}


def test_fer2013_to_ravdess_scores_only_mapped_classes(tmp_path: Path) -> None:
    # the same class directions (seed) in both datasets: RAVDESS class i = FER class of the same name
    fer = planted_clips(FER, n_clips=70, n_frames=4, dataset="fer2013", signal=1.5, seed=1)
    rav = planted_clips(FER, n_clips=35, n_frames=8, dataset="ravdess", signal=1.5, seed=1)
    # relabel the RAVDESS fixture into RAVDESS ids (calm = 1 stays unused, so add one calm clip by hand)
    ids = {FER.index(f): RAVDESS.index(r) for f, r in LABEL_MAPS["fer2013-ravdess"].items()}
    rav.rows["label_emotion"] = rav.rows["label_emotion"].map(lambda v: float(ids[int(v)]))
    rav.rows.loc[rav.rows["item"] == "ravdess/00000", "label_emotion"] = 1.0  # one calm clip
    rav.manifest["label_names"] = {"emotion": list(RAVDESS)}
    cfg = FuseConfig(strategy="face", target="emotion", granularity="trial", test_stores=("<memory>",),
                     label_map="fer2013-ravdess", out=str(tmp_path / "x"), save_final=False)
    result = run_cross_dataset(cfg, [fer], [rav])
    metrics = json.loads((result.out / "metrics.json").read_text())
    assert metrics["protocol"] == "cross-dataset" and metrics["rows"]["test_unmapped_class"] == 1
    assert len(result.predictions) == 34
    assert "calm" not in set(np.array(RAVDESS)[result.predictions["y_pred"]])
    assert metrics["pooled"]["accuracy"] > 0.6 > metrics["baseline"]["pooled"]["accuracy"]


def test_dfew7_to_2(tmp_path: Path) -> None:
    train = planted_clips(DFEW7, n_clips=70, n_frames=4, seed=2)
    test = planted_clips(DFEW7, n_clips=28, n_frames=4, seed=2)
    two = {i: (0 if name in ("happy", "neutral", "surprise") else 1) for i, name in enumerate(DFEW7)}
    test.rows["label_emotion"] = test.rows["label_emotion"].map(lambda v: float(two[int(v)]))
    test.manifest["label_names"] = {"emotion": ["positive", "negative"]}
    cfg = FuseConfig(strategy="face", target="emotion", granularity="trial", test_stores=("<memory>",),
                     label_map="dfew7-2", save_final=False)
    result = run_cross_dataset(cfg, [train], [test], write=False)
    assert result.metrics["classes"] == ["positive", "negative"]
    assert result.metrics["pooled"]["accuracy"] > 0.8
