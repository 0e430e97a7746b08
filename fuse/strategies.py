"""Fusion strategies (registry STRATEGIES): one per single modality (eeg, face, eye, audio, peripheral), and
early, late, transformer over any number of modalities.

A strategy owns its preprocessors and classifiers; ``fit(inputs, y)`` sees training rows only, so every scaler,
PCA, late-fusion weight and stacker is fitted on the training fold. Inputs carry one (n, d) matrix per modality
(role) with NaN rows where a modality is missing (late fusion then uses the modalities a row has). The fusion
strategies read the modalities the inputs carry at ``fit`` (in table order) and record them in their state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fuse.classifiers import (
    Arrays,
    Classifier,
    LogReg,
    Preprocessor,
    SequenceInputs,
    classifier_from_state,
    create_classifier,
    prefixed,
    unprefixed,
)
from fuse.config import SINGLE_MODALITY, STRATEGY_NAMES, FuseConfig
from fuse.errors import FuseInputError
from fuse.inputs import ordered
from fuse.registries import STRATEGIES, check_builtins
from fuse.train import inner_split


@dataclass
class Inputs:
    """Rows handed to a strategy: per-role features, trial keys (groups), subjects, and transformer sequences."""

    features: dict[str, np.ndarray]
    groups: np.ndarray | None = None
    subjects: np.ndarray | None = None
    seq_pools: dict[str, np.ndarray] | None = None
    seq_index: np.ndarray | None = None

    def __len__(self) -> int:
        if self.features:
            return len(next(iter(self.features.values())))
        return 0 if self.seq_index is None else len(self.seq_index)

    def take(self, idx: np.ndarray) -> Inputs:
        return Inputs(
            features={k: v[idx] for k, v in self.features.items()},
            groups=None if self.groups is None else self.groups[idx],
            subjects=None if self.subjects is None else self.subjects[idx],
            seq_pools=self.seq_pools,
            seq_index=None if self.seq_index is None else self.seq_index[idx],
        )

    def group_keys(self) -> np.ndarray:
        return self.groups if self.groups is not None else np.arange(len(self))


class Strategy(ABC):
    name = ""
    roles: tuple[str, ...] = ()  # roles whose features it reads

    def __init__(self, cfg: FuseConfig, n_classes: int, seed: int = 0) -> None:
        self.cfg, self.n_classes, self.seed = cfg, n_classes, seed

    @abstractmethod
    def fit(self, inputs: Inputs, y: np.ndarray) -> Strategy: ...

    @abstractmethod
    def predict_proba(self, inputs: Inputs) -> np.ndarray: ...

    @abstractmethod
    def state(self) -> tuple[Arrays, dict[str, Any]]: ...

    @abstractmethod
    def load_state(self, arrays: Arrays, meta: dict[str, Any]) -> None: ...

    def _new_classifier(self, offset: int = 0) -> Classifier:
        return create_classifier(self.cfg.classifier_name, self.n_classes, self.cfg, self.seed + offset)


class _Branch:
    """Preprocessor + classifier on one feature matrix."""

    def __init__(self, prep: Preprocessor, clf: Classifier) -> None:
        self.prep, self.clf = prep, clf

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, subjects: np.ndarray | None) -> _Branch:
        self.clf.fit(self.prep.fit_transform(X), y, groups, subjects)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.clf.predict_proba(self.prep.transform(X))

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        pa, pm = self.prep.state()
        ca, cm = self.clf.state()
        return prefixed("prep", pa) | prefixed("clf", ca), {"prep": pm, "clf": cm}

    @classmethod
    def from_state(cls, arrays: Arrays, meta: dict[str, Any]) -> _Branch:
        return cls(Preprocessor.from_state(unprefixed("prep", arrays), meta["prep"]),
                   classifier_from_state(unprefixed("clf", arrays), meta["clf"]))


def _require(inputs: Inputs, roles: tuple[str, ...]) -> None:
    for role in roles:
        if role not in inputs.features:
            raise FuseInputError(f"this strategy needs {role} features; the inputs have {sorted(inputs.features)}")
        if not np.isfinite(np.sum(inputs.features[role], dtype=np.float64)):  # one pass, no boolean temporary
            raise FuseInputError(f"{role} features have missing rows; drop them before this strategy")


class Single(Strategy):
    """One modality: standardise (+PCA) -> classifier."""

    def __init__(self, cfg: FuseConfig, n_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, n_classes, seed)
        self.branch = _Branch(Preprocessor(n_components=cfg.pca_components, seed=seed), self._new_classifier())

    def fit(self, inputs: Inputs, y: np.ndarray) -> Single:
        _require(inputs, self.roles)
        self.branch.fit(inputs.features[self.roles[0]], y, inputs.group_keys(), inputs.subjects)
        return self

    def predict_proba(self, inputs: Inputs) -> np.ndarray:
        _require(inputs, self.roles)
        return self.branch.predict_proba(inputs.features[self.roles[0]])

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        return self.branch.state()

    def load_state(self, arrays: Arrays, meta: dict[str, Any]) -> None:
        self.branch = _Branch.from_state(arrays, meta)


def _single(modality: str) -> type[Single]:
    """The single-modality strategy of ``modality`` (registered under its name)."""
    cls = type(f"{modality.capitalize()}Only", (Single,), {"name": modality, "roles": (modality,),
                                                            "__doc__": f"The {modality} modality alone."})
    return STRATEGIES.register(modality)(cls)


EEGOnly, FaceOnly, EyeOnly, AudioOnly, PeripheralOnly = (_single(m) for m in SINGLE_MODALITY)


def _input_roles(inputs: Inputs) -> tuple[str, ...]:
    """The modalities the inputs carry (features, or transformer pools), in table order."""
    return ordered(inputs.features or (inputs.seq_pools or {}))


@STRATEGIES.register("early")
class Early(Strategy):
    """Early fusion: each modality standardised, concatenated, optional PCA, one classifier."""

    name = "early"

    def __init__(self, cfg: FuseConfig, n_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, n_classes, seed)
        self.preps: dict[str, Preprocessor] = {}
        self.branch = _Branch(Preprocessor(standardize=False, n_components=cfg.pca_components, seed=seed),
                              self._new_classifier())

    def _joint(self, inputs: Inputs, fit: bool) -> np.ndarray:
        """Each modality standardised straight into its columns of one (n, sum of dims) float32 matrix."""
        dims = [inputs.features[r].shape[1] for r in self.roles]
        joint = np.empty((len(inputs), sum(dims)), dtype=np.float32)
        start = 0
        for role, dim in zip(self.roles, dims, strict=True):
            if fit:
                self.preps[role] = Preprocessor(seed=self.seed).fit(inputs.features[role])
            self.preps[role].transform(inputs.features[role], out=joint[:, start : start + dim])
            start += dim
        return joint

    def fit(self, inputs: Inputs, y: np.ndarray) -> Early:
        self.roles = _input_roles(inputs)
        if len(self.roles) < 2:
            raise FuseInputError(f"early fusion needs two or more modalities; the inputs have {list(self.roles)}")
        _require(inputs, self.roles)
        self.branch.fit(self._joint(inputs, fit=True), y, inputs.group_keys(), inputs.subjects)
        return self

    def predict_proba(self, inputs: Inputs) -> np.ndarray:
        _require(inputs, self.roles)
        return self.branch.predict_proba(self._joint(inputs, fit=False))

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        arrays, meta = self.branch.state()
        arrays = prefixed("joint", arrays)
        meta = {"joint": meta, "modalities": list(self.roles)}
        arrays |= _preps_state(self.preps, meta)
        return arrays, meta

    def load_state(self, arrays: Arrays, meta: dict[str, Any]) -> None:
        self.roles = tuple(meta.get("modalities", ("eeg", "face")))
        self.branch = _Branch.from_state(unprefixed("joint", arrays), meta["joint"])
        self.preps = _preps_from_state(self.roles, arrays, meta)


def weight_grid(n: int) -> np.ndarray:
    """Candidate weight vectors for ``n`` modalities: the simplex in steps of 0.1 (0.25 past three modalities)."""
    steps = 10 if n <= 3 else 4
    import itertools

    points = [c for c in itertools.product(range(steps + 1), repeat=n - 1) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in points], dtype=np.float64) / steps


@STRATEGIES.register("late")
class Late(Strategy):
    """Late fusion: one classifier per modality (trained on the rows that have it), probabilities combined.

    combine = mean (fixed weights, one per modality; default equal), tuned (the weight vector on a 0.1 simplex
    grid that maximises the log-likelihood on an inner validation split of the training trials; ties go to the
    most even weights), or stack (a logistic regression on the out-of-fold probabilities of the per-modality
    classifiers, folds grouped by trial). Rows missing a modality use the others (mean/tuned renormalise the
    weights; stack fills the missing probabilities with the training prior).
    """

    name = "late"

    def __init__(self, cfg: FuseConfig, n_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, n_classes, seed)
        self.combine = cfg.late.combine
        self.weights = np.array(cfg.late.weights, dtype=np.float64)
        self.branches: dict[str, _Branch] = {}
        self.prior = np.full(n_classes, 1.0 / n_classes)
        self.stacker: LogReg | None = None

    def _fit_branches(self, inputs: Inputs, y: np.ndarray) -> dict[str, _Branch]:
        branches = {}
        groups = inputs.group_keys()
        for i, role in enumerate(self.roles):
            if role not in inputs.features:
                continue
            ok = np.isfinite(inputs.features[role]).all(axis=1)
            if ok.sum() == 0:
                continue
            branch = _Branch(Preprocessor(n_components=self.cfg.pca_components, seed=self.seed),
                             self._new_classifier(offset=i))
            subjects = None if inputs.subjects is None else inputs.subjects[ok]
            branches[role] = branch.fit(inputs.features[role][ok], y[ok], groups[ok], subjects)
        if not branches:
            raise FuseInputError("late fusion: no modality has any training row")
        return branches

    def _role_probas(self, branches: dict[str, _Branch], inputs: Inputs) -> dict[str, np.ndarray]:
        """Per modality: (n, C) probabilities, NaN rows where the row lacks the modality."""
        out = {}
        for role in self.roles:
            probs = np.full((len(inputs), self.n_classes), np.nan)
            if role in branches and role in inputs.features:
                ok = np.isfinite(inputs.features[role]).all(axis=1)
                if ok.any():
                    probs[ok] = branches[role].predict_proba(inputs.features[role][ok])
            out[role] = probs
        return out

    def _mean(self, probas: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
        total = np.zeros((len(next(iter(probas.values()))), self.n_classes))
        wsum = np.zeros((len(total), 1))
        for w, role in zip(weights, self.roles, strict=True):
            p = probas[role]
            ok = np.isfinite(p).all(axis=1)
            total[ok] += w * p[ok]
            wsum[ok] += w
        fallback = (wsum[:, 0] <= 0)
        total[fallback] = self.prior
        wsum[fallback] = 1.0
        return total / wsum

    def _stack_features(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.where(np.isfinite(probas[r]), probas[r], self.prior) for r in self.roles], axis=1)

    def fit(self, inputs: Inputs, y: np.ndarray) -> Late:
        self.roles = _input_roles(inputs)
        if not self.roles:
            raise FuseInputError("late fusion: the inputs carry no modality")
        n = len(self.roles)
        if not len(self.weights):
            self.weights = np.ones(n)
        if len(self.weights) != n:
            raise FuseInputError(f"late.weights has {len(self.weights)} values but the run fuses {n} modalities "
                             f"({', '.join(self.roles)}); give one weight per modality in that order")
        y = np.asarray(y, dtype=np.int64)
        self.prior = np.bincount(y, minlength=self.n_classes) / len(y)
        groups = inputs.group_keys()
        rng = np.random.default_rng(self.seed)
        if self.combine == "tuned" and n > 1:
            tr, va = inner_split(groups, self.cfg.train.val_fraction, rng)
            if len(va):
                probas = self._role_probas(self._fit_branches(inputs.take(tr), y[tr]), inputs.take(va))
                even = np.full(n, 1.0 / n)
                best, best_ll = even, -np.inf
                for w in weight_grid(n):
                    p = self._mean(probas, w)
                    ll = float(np.mean(np.log(np.clip(p[np.arange(len(va)), y[va]], 1e-12, None))))
                    closer = np.abs(w - even).sum() < np.abs(best - even).sum()
                    if ll > best_ll + 1e-12 or (abs(ll - best_ll) <= 1e-12 and closer):
                        best, best_ll = w, ll
                self.weights = np.asarray(best, dtype=np.float64)
        elif self.combine == "stack":
            uniq = np.unique(groups)
            k = min(self.cfg.late.inner_folds, len(uniq))
            if k >= 2:
                fold_of_group = rng.permutation(len(uniq)) % k
                fold = fold_of_group[np.searchsorted(uniq, groups)]
                oof = {r: np.full((len(y), self.n_classes), np.nan) for r in self.roles}
                for f in range(k):
                    tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
                    part = self._role_probas(self._fit_branches(inputs.take(tr), y[tr]), inputs.take(te))
                    for r in self.roles:
                        oof[r][te] = part[r]
                self.stacker = LogReg(self.n_classes, seed=self.seed).fit(self._stack_features(oof), y, groups)
        self.branches = self._fit_branches(inputs, y)
        return self

    def modality_proba(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Each modality's own branch probabilities (n, C), NaN rows where the row lacks the modality."""
        return self._role_probas(self.branches, inputs)

    def predict_proba(self, inputs: Inputs) -> np.ndarray:
        probas = self._role_probas(self.branches, inputs)
        if self.stacker is not None:
            return self.stacker.predict_proba(self._stack_features(probas))
        return self._mean(probas, self.weights)

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        arrays: Arrays = {"weights": self.weights, "prior": self.prior}
        meta: dict[str, Any] = {"combine": self.combine, "roles": sorted(self.branches),
                                "modalities": list(self.roles)}
        for role, branch in self.branches.items():
            a, m = branch.state()
            arrays |= prefixed(role, a)
            meta[role] = m
        if self.stacker is not None:
            a, m = self.stacker.state()
            arrays |= prefixed("stacker", a)
            meta["stacker"] = m
        return arrays, meta

    def load_state(self, arrays: Arrays, meta: dict[str, Any]) -> None:
        self.combine = meta["combine"]
        self.roles = tuple(meta.get("modalities", ("eeg", "face")))
        self.weights, self.prior = arrays["weights"], arrays["prior"]
        self.branches = {r: _Branch.from_state(unprefixed(r, arrays), meta[r]) for r in meta["roles"]}
        self.stacker = LogReg.from_state(unprefixed("stacker", arrays), meta["stacker"]) if "stacker" in meta else None


@STRATEGIES.register("transformer")
class CrossModal(Strategy):
    """The cross-modal transformer over the windows of a trial (a context around each window, or the whole trial).
    Each role is standardised with training-row statistics before it enters the network."""

    name = "transformer"

    def __init__(self, cfg: FuseConfig, n_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, n_classes, seed)
        self.preps: dict[str, Preprocessor] = {}
        self.clf = self._new_classifier()

    def _sequences(self, inputs: Inputs, fit: bool) -> SequenceInputs:
        if inputs.seq_pools is None or inputs.seq_index is None:
            raise ValueError("the transformer strategy needs sequence inputs (seq_pools, seq_index)")
        if fit:
            self.roles = _input_roles(inputs)
            if len(self.roles) < 2:
                raise FuseInputError(f"the transformer needs two or more modalities; the inputs have {list(self.roles)}")
        pools = {}
        for role in self.roles:
            pool = inputs.seq_pools[role]
            if fit:  # statistics from the windows the training rows read
                used = np.unique(inputs.seq_index[inputs.seq_index >= 0])
                rows = pool[used]
                self.preps[role] = Preprocessor(seed=self.seed).fit(rows[np.isfinite(rows).all(axis=1)])
            pools[role] = self.preps[role].transform(pool)
        return SequenceInputs(pools, inputs.seq_index)

    def fit(self, inputs: Inputs, y: np.ndarray) -> CrossModal:
        self.clf.fit(self._sequences(inputs, fit=True), y, inputs.group_keys(), inputs.subjects)
        return self

    def predict_proba(self, inputs: Inputs) -> np.ndarray:
        return self.clf.predict_proba(self._sequences(inputs, fit=False))

    def explain(self, inputs: Inputs, attention_rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Gate weights per row and cross-attention maps of ``attention_rows`` (see ``Transformer.explain``)."""
        return self.clf.explain(self._sequences(inputs, fit=False), attention_rows)

    def state(self) -> tuple[Arrays, dict[str, Any]]:
        arrays, cm = self.clf.state()
        arrays = prefixed("clf", arrays)
        meta: dict[str, Any] = {"clf": cm, "modalities": list(self.roles)}
        arrays |= _preps_state(self.preps, meta)
        return arrays, meta

    def load_state(self, arrays: Arrays, meta: dict[str, Any]) -> None:
        self.roles = tuple(meta.get("modalities", ("eeg", "face")))
        self.clf = classifier_from_state(unprefixed("clf", arrays), meta["clf"])
        self.preps = _preps_from_state(self.roles, arrays, meta)


check_builtins(STRATEGIES, STRATEGY_NAMES)


def create_strategy(cfg: FuseConfig, n_classes: int, seed: int | None = None) -> Strategy:
    return STRATEGIES.create(cfg.strategy, cfg=cfg, n_classes=n_classes, seed=cfg.seed if seed is None else seed)


def _preps_state(preps: dict[str, Preprocessor], meta: dict[str, Any]) -> Arrays:
    """The arrays of each role's preprocessor under ``<role>.prep``; their metadata goes into ``meta``."""
    arrays: Arrays = {}
    for role, prep in preps.items():
        a, m = prep.state()
        arrays |= prefixed(f"{role}.prep", a)
        meta[f"{role}.prep"] = m
    return arrays


def _preps_from_state(roles: Sequence[str], arrays: Arrays, meta: dict[str, Any]) -> dict[str, Preprocessor]:
    """Inverse of ``_preps_state``."""
    return {r: Preprocessor.from_state(unprefixed(f"{r}.prep", arrays), meta[f"{r}.prep"]) for r in roles}
