"""Saved models: ``model.json`` (what it is, what it reads, its classes) + ``weights.safetensors`` (every array:
scaler mean/scale, PCA components, logistic-regression coef/intercept/classes, torch weights). No pickle anywhere.

``load_model(results_dir)`` returns a ``FusionModel`` whose ``predict_proba`` scores new features:
- single-modality models (strategy eeg or face): an (n, d) array of that modality's row features, built the way
  ``inputs[role]`` in model.json says (store manifest: extractor, backbone, fps; pooling over ``window_s`` windows,
  or the per-trial mean for trial granularity);
- early / late: a mapping {"eeg": (n, d_eeg), "face": (n, d_face)} (late accepts NaN rows for a missing modality);
- transformer: a mapping of (n, L, d) sequences per role (NaN rows = missing windows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from fuse.config import FuseConfig, config_from_dict
from fuse.strategies import STRATEGIES, Inputs, Strategy

FORMAT = "mmer-fuse-model/1"
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"


class FusionModel:
    """A trained strategy plus what it needs to be used later (classes, inputs, granularity)."""

    def __init__(self, strategy: Strategy, info: Mapping[str, Any]) -> None:
        self.strategy = strategy
        self.info = dict(info)
        self.classes: list[str] = list(info["classes"])
        self.roles: list[str] = list(info["roles"])

    def _inputs(self, X: np.ndarray | Mapping[str, np.ndarray]) -> Inputs:
        if not isinstance(X, Mapping):
            if len(self.roles) != 1:
                raise ValueError(f"this model reads {self.roles}; pass a mapping role -> features")
            X = {self.roles[0]: X}
        missing = [r for r in self.roles if r not in X and self.info["strategy"] != "late"]
        if missing:
            raise ValueError(f"features for {missing} are missing; this model reads {self.roles}")
        arrays = {r: np.asarray(v, dtype=np.float32) for r, v in X.items() if r in self.roles}
        if self.info["strategy"] == "transformer":
            n, length = next(iter(arrays.values())).shape[:2]
            pools = {r: v.reshape(n * length, -1) for r, v in arrays.items()}
            return Inputs(features={}, seq_pools=pools, seq_index=np.arange(n * length).reshape(n, length))
        for role, v in arrays.items():
            dim = self.info["inputs"][role]["dim"]
            if v.ndim != 2 or v.shape[1] != dim:
                raise ValueError(f"{role} features must be (n, {dim}), got {v.shape}")
        return Inputs(features=arrays)

    def predict_proba(self, X: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """(n, n_classes) probabilities, columns in ``classes`` order."""
        return self.strategy.predict_proba(self._inputs(X))

    def predict(self, X: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Class names of the most probable class per row."""
        return np.asarray(self.classes)[self.predict_proba(X).argmax(axis=1)]


def save_model(strategy: Strategy, info: Mapping[str, Any], directory: str | Path) -> Path:
    """Write model.json + weights.safetensors into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays, state = strategy.state()
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items() if v is not None}
    save_file(arrays, str(directory / WEIGHTS), metadata={"format": FORMAT})
    doc = {"format": FORMAT, **info, "state": state}
    (directory / MODEL_JSON).write_text(json.dumps(doc, indent=2, sort_keys=True, default=_json_default) + "\n")
    return directory


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def model_dir(path: str | Path) -> Path:
    """The model folder of a results directory (models/final), or ``path`` itself when it holds model.json."""
    path = Path(path)
    if (path / MODEL_JSON).is_file():
        return path
    final = path / "models" / "final"
    if (final / MODEL_JSON).is_file():
        return final
    raise FileNotFoundError(f"{path}: no saved model (expected {MODEL_JSON} or models/final/{MODEL_JSON}); "
                            "was the run made with --no-save-final?")


def load_model(path: str | Path) -> FusionModel:
    """Load a saved model from a results directory or a model folder (safetensors + JSON only)."""
    directory = model_dir(path)
    doc = json.loads((directory / MODEL_JSON).read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{directory}: unknown model format {doc.get('format')!r} (expected {FORMAT})")
    cfg = config_from_dict(FuseConfig, doc["config"])
    strategy = STRATEGIES.create(doc["strategy"], cfg=cfg, n_classes=len(doc["classes"]), seed=cfg.seed)
    strategy.load_state(load_file(str(directory / WEIGHTS)), doc["state"])
    return FusionModel(strategy, doc)
