"""Classifiers (registry CLASSIFIERS: logreg, mlp, transformer) and the standardise(+PCA) preprocessor.

Every component exposes ``state() -> (arrays, meta)`` and ``from_state(arrays, meta)``: arrays go into a
safetensors file, meta into JSON. Nothing here is pickled.
Class codes are 0..n_classes-1 for the whole run; a classifier always returns n_classes probability columns,
even when its training fold lacked a class (that column is then 0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from fuse import train
from fuse.config import FuseConfig, LogRegConfig, MLPConfig, TrainConfig, TransformerConfig
from fuse.nets import CrossModalTransformer, MLPHead
from store.registry import Registry

Arrays = dict[str, np.ndarray]


def prefixed(prefix: str, arrays: Arrays) -> Arrays:
    return {f"{prefix}.{k}": v for k, v in arrays.items()}


def unprefixed(prefix: str, arrays: Arrays) -> Arrays:
    p = f"{prefix}."
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}


class Preprocessor:
    """Standardise with training-fold mean/std, then optionally project on the training fold's PCA components."""

    def __init__(self, standardize: bool = True, n_components: int = 0, seed: int = 0) -> None:
        self.standardize, self.n_components, self.seed = standardize, int(n_components), seed
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self.pca_mean_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Preprocessor:
        X = np.asarray(X, dtype=np.float32)
        if self.standardize:  # float64 accumulators, float32 data
            self.mean_ = X.mean(axis=0, dtype=np.float64)
            std = np.sqrt(np.maximum((X * X).mean(axis=0, dtype=np.float64) - self.mean_**2, 0.0))
            self.scale_ = np.where(std > 1e-6 * np.maximum(np.abs(self.mean_), 1.0), std, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        if self.n_components > 0:
            Z = self.transform(X)
            n = min(self.n_components, Z.shape[0], Z.shape[1])
            pca = PCA(n_components=n, random_state=self.seed).fit(Z)
            self.components_, self.pca_mean_ = pca.components_, pca.mean_
        return self

    @property
    def is_identity(self) -> bool:
        return not self.standardize and self.components_ is None

    def transform(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 (X - mean) / scale [@ components.T]; ``out`` (n, k) receives the result without a temporary."""
        X = np.asarray(X, dtype=np.float32)
        if self.is_identity and out is None:
            return X
        if self.components_ is not None:
            Z = (X - self.mean_.astype(np.float32)) * (1.0 / self.scale_).astype(np.float32)
            Z -= self.pca_mean_.astype(np.float32)
            return np.matmul(Z, self.components_.T.astype(np.float32), out=out)
        Z = out if out is not None else np.empty(X.shape, dtype=np.float32)
        np.subtract(X, self.mean_.astype(np.float32), out=Z)
        Z *= (1.0 / self.scale_).astype(np.float32)
        return Z

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        arrays = {"mean": self.mean_, "scale": self.scale_}
        if self.components_ is not None:
            arrays |= {"components": self.components_, "pca_mean": self.pca_mean_}
        return arrays, {"standardize": self.standardize, "n_components": self.n_components}

    @classmethod
    def from_state(cls, arrays: Arrays, meta: dict[str, Any]) -> Preprocessor:
        out = cls(standardize=meta["standardize"], n_components=meta["n_components"])
        out.mean_, out.scale_ = arrays["mean"], arrays["scale"]
        out.components_, out.pca_mean_ = arrays.get("components"), arrays.get("pca_mean")
        return out


class Classifier(ABC):
    """fit(X, y, groups=trial keys, subjects=...) then predict_proba(X) -> (n, n_classes)."""

    name = ""

    def __init__(self, n_classes: int, seed: int = 0) -> None:
        self.n_classes, self.seed = n_classes, seed

    @abstractmethod
    def fit(self, X: Any, y: np.ndarray, groups: np.ndarray, subjects: np.ndarray | None = None) -> Classifier: ...

    @abstractmethod
    def predict_proba(self, X: Any) -> np.ndarray: ...

    @abstractmethod
    def state(self) -> tuple[Arrays, dict[str, Any]]: ...

    @classmethod
    @abstractmethod
    def from_state(cls, arrays: Arrays, meta: dict[str, Any]) -> Classifier: ...


CLASSIFIERS: Registry[Classifier] = Registry("classifier")


@CLASSIFIERS.register("logreg")
class LogReg(Classifier):
    """scikit-learn LogisticRegression (lbfgs, L2); saved as coef/intercept/classes arrays."""

    name = "logreg"

    def __init__(self, n_classes: int, seed: int = 0, cfg: LogRegConfig | None = None) -> None:
        super().__init__(n_classes, seed)
        self.cfg = cfg or LogRegConfig()
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.classes_: np.ndarray | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, subjects: np.ndarray | None = None) -> LogReg:
        y = np.asarray(y, dtype=np.int64)
        self.classes_ = np.unique(y)
        if len(self.classes_) == 1:  # a fold with one class: predict it with certainty
            self.coef_ = np.zeros((1, X.shape[1]))
            self.intercept_ = np.zeros(1)
            return self
        model = LogisticRegression(
            C=self.cfg.C, max_iter=self.cfg.max_iter, random_state=self.seed,
            class_weight="balanced" if self.cfg.class_weight == "balanced" else None,
        )
        model.fit(np.asarray(X, dtype=np.float32), y)
        self.coef_, self.intercept_ = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((len(X), self.n_classes))
        if len(self.classes_) == 1:
            out[:, self.classes_[0]] = 1.0
            return out
        z = np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_
        if z.shape[1] == 1:  # binary: sigmoid of the one decision function, as sklearn does
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            probs = np.stack([1.0 - p1, p1], axis=1)
        else:
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            probs = e / e.sum(axis=1, keepdims=True)
        out[:, self.classes_] = probs
        return out

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        return ({"coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_.astype(np.int64)},
                {"name": self.name, "n_classes": self.n_classes, "config": asdict(self.cfg)})

    @classmethod
    def from_state(cls, arrays: Arrays, meta: dict[str, Any]) -> LogReg:
        out = cls(meta["n_classes"], cfg=LogRegConfig(**meta["config"]))
        out.coef_, out.intercept_, out.classes_ = arrays["coef"], arrays["intercept"], arrays["classes"]
        return out


class TorchClassifier(Classifier):
    """Shared save/load of torch heads: weights as arrays, constructor arguments as JSON."""

    def __init__(self, n_classes: int, seed: int = 0, train_cfg: TrainConfig | None = None) -> None:
        super().__init__(n_classes, seed)
        self.train_cfg = train_cfg or TrainConfig()
        self.net: torch.nn.Module | None = None
        self.net_args: dict[str, Any] = {}
        self.report: train.TrainReport | None = None

    @abstractmethod
    def build(self, **net_args: Any) -> torch.nn.Module: ...

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        arrays = {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        return arrays, {"name": self.name, "n_classes": self.n_classes, "net_args": self.net_args}

    @classmethod
    def from_state(cls, arrays: Arrays, meta: dict[str, Any]) -> TorchClassifier:
        out = cls(meta["n_classes"])
        out.net_args = dict(meta["net_args"])
        out.net = out.build(**out.net_args)
        out.net.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()})
        out.net.eval()
        return out


@CLASSIFIERS.register("mlp")
class MLP(TorchClassifier):
    """One-hidden-layer MLP trained by ``fuse.train.fit``."""

    name = "mlp"

    def __init__(self, n_classes: int, seed: int = 0, cfg: MLPConfig | None = None,
                 train_cfg: TrainConfig | None = None) -> None:
        super().__init__(n_classes, seed, train_cfg)
        self.cfg = cfg or MLPConfig()

    def build(self, **net_args: Any) -> torch.nn.Module:
        return MLPHead(**net_args)

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, subjects: np.ndarray | None = None) -> MLP:
        torch.manual_seed(self.seed)
        self.net_args = {"in_dim": int(X.shape[1]), "n_classes": self.n_classes, "hidden": self.cfg.hidden,
                         "dropout": self.cfg.dropout}
        self.net = self.build(**self.net_args)
        X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
        self.report = train.fit(self.net, lambda idx: {"x": X_t[idx]}, y, groups, self.n_classes, self.train_cfg,
                                seed=self.seed)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
        if len(X_t) == 0:
            return np.zeros((0, self.n_classes))
        return train.predict_proba(self.net, lambda idx: {"x": X_t[idx]}, len(X_t), threads=self.train_cfg.threads)


class SequenceInputs:
    """Transformer input without materialising sequences: per-role feature pools (N, d) (NaN = missing) and an
    (n, L) index into them (-1 = padding)."""

    def __init__(self, pools: dict[str, np.ndarray], index: np.ndarray) -> None:
        self.pools = {k: torch.as_tensor(np.nan_to_num(np.asarray(v, dtype=np.float32))) for k, v in pools.items()}
        self.missing = {k: torch.as_tensor(~np.isfinite(np.asarray(v)).all(axis=1)) for k, v in pools.items()}
        self.index = np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def from_sequences(cls, sequences: dict[str, np.ndarray]) -> SequenceInputs:
        """From (n, L, d) arrays per role (NaN rows = missing positions)."""
        n, length = next(iter(sequences.values())).shape[:2]
        pools = {k: np.asarray(v, dtype=np.float32).reshape(n * length, -1) for k, v in sequences.items()}
        return cls(pools, np.arange(n * length).reshape(n, length))

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        idx = self.index[rows]
        pad = torch.as_tensor(idx < 0)
        safe = torch.as_tensor(np.where(idx < 0, 0, idx))
        out = {}
        for role in self.pools:
            out[role] = self.pools[role][safe]
            out[f"{role}_pad"] = pad | self.missing[role][safe]
        return out


@CLASSIFIERS.register("transformer")
class Transformer(TorchClassifier):
    """The cross-modal transformer head; X is a ``SequenceInputs``."""

    name = "transformer"

    def __init__(self, n_classes: int, seed: int = 0, cfg: TransformerConfig | None = None,
                 train_cfg: TrainConfig | None = None) -> None:
        super().__init__(n_classes, seed, train_cfg)
        self.cfg = cfg or TransformerConfig()

    def build(self, **net_args: Any) -> torch.nn.Module:
        return CrossModalTransformer(**net_args)

    def fit(self, X: SequenceInputs, y: np.ndarray, groups: np.ndarray,
            subjects: np.ndarray | None = None) -> Transformer:
        torch.manual_seed(self.seed)
        subject_codes = None
        n_subjects = 0
        if subjects is not None and self.cfg.adversary_lambda > 0:
            uniq, subject_codes = np.unique(subjects, return_inverse=True)
            n_subjects = len(uniq)
        self.net_args = {
            "dims": {role: int(pool.shape[1]) for role, pool in X.pools.items()},
            "n_classes": self.n_classes, "d_model": self.cfg.d_model, "heads": self.cfg.heads,
            "dropout": self.cfg.dropout, "max_len": max(int(X.index.shape[1]), 1), "n_subjects": n_subjects,
            "adversary_lambda": self.cfg.adversary_lambda, "adversary_schedule": self.cfg.adversary_schedule,
            "feature_gate": self.cfg.feature_gate, "modality_layers": self.cfg.modality_layers, "head": self.cfg.head,
        }
        self.net = self.build(**self.net_args)
        subj_t = torch.as_tensor(subject_codes) if subject_codes is not None else None

        def gather(rows: np.ndarray) -> dict[str, torch.Tensor]:
            batch = X.batch(rows)
            if subj_t is not None:
                batch["subject"] = subj_t[rows]
            return batch

        self.report = train.fit(self.net, gather, y, groups, self.n_classes, self.train_cfg, seed=self.seed)
        return self

    def predict_proba(self, X: SequenceInputs) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, self.n_classes))
        if X.index.shape[1] > self.net_args["max_len"]:
            raise ValueError(f"sequences of {X.index.shape[1]} windows; this model takes at most "
                             f"{self.net_args['max_len']}")
        return train.predict_proba(self.net, X.batch, len(X), threads=self.train_cfg.threads)

    @torch.no_grad()
    def explain(self, X: SequenceInputs, attention_rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Modality gate weights (n, M: the net's modalities in order) of every row and, for ``attention_rows``, the
        head-averaged cross-attention maps (``<m>_to_<others>``, e.g. ``eeg_to_face``: (k, L, (M-1) L)) with each
        row's padding masks (``<m>_pad``)."""
        self.net.eval()
        gates = []
        names = list(self.net.names)
        with train.torch_threads(self.train_cfg.threads):
            for start in range(0, len(X), 1024):
                self.net.fused(X.batch(np.arange(start, min(start + 1024, len(X)))))
                gates.append(self.net.last_gate.cpu().numpy())
            out = {"gate": np.concatenate(gates) if gates else np.zeros((0, len(names)))}
            if attention_rows is not None and len(attention_rows):
                batch = X.batch(np.asarray(attention_rows))
                self.net.keep_attention = True
                try:
                    self.net.fused(batch)
                finally:
                    self.net.keep_attention = False
                for name, weights in self.net.last_attention.items():
                    out[name] = weights.cpu().numpy()
                for m in names:
                    out[f"{m}_pad"] = batch[f"{m}_pad"].numpy()
        return out


def create_classifier(name: str, n_classes: int, cfg: FuseConfig, seed: int) -> Classifier:
    """A fresh classifier named ``name`` configured from the run's config."""
    kwargs: dict[str, Any] = {"n_classes": n_classes, "seed": seed}
    if name == "logreg":
        kwargs["cfg"] = cfg.logreg
    elif name == "mlp":
        kwargs |= {"cfg": cfg.mlp, "train_cfg": cfg.train}
    elif name == "transformer":
        kwargs |= {"cfg": cfg.transformer, "train_cfg": cfg.train}
    return CLASSIFIERS.create(name, **kwargs)


def classifier_from_state(arrays: Arrays, meta: dict[str, Any]) -> Classifier:
    return CLASSIFIERS.get(meta["name"]).from_state(arrays, meta)
