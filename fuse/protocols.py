"""Evaluation protocols: train/test splits of the rows that never put one trial on both sides.

Every protocol returns a list of ``Split`` and every split is checked by ``check_split`` before it is returned:
no item (trial/clip) on both sides, and for LOSO no subject on both sides. A violation raises ``LeakageError``.
Each row is tested exactly once over the splits of a protocol.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fuse.errors import FuseInputError
from store.registry import Registry


class LeakageError(AssertionError):
    """A split would put rows of one trial (or, for LOSO, one subject) in both train and test."""


@dataclass(frozen=True)
class Split:
    name: str  # e.g. "s07" (LOSO), "s03/k2" (kfold), "fold3" (dfew)
    train: np.ndarray  # row indices
    test: np.ndarray

    def manifest(self, rows: pd.DataFrame) -> dict[str, Any]:
        items = rows["item"].to_numpy()
        return {"name": self.name, "n_train": int(len(self.train)), "n_test": int(len(self.test)),
                "train_items": sorted(set(items[self.train].tolist())),
                "test_items": sorted(set(items[self.test].tolist()))}


ProtocolFn = Callable[..., list[Split]]
PROTOCOLS: Registry[list[Split]] = Registry("protocol")


def check_split(rows: pd.DataFrame, split: Split, *, by_subject: bool = False) -> None:
    """Raise LeakageError when an item (or, with ``by_subject``, a subject) has rows on both sides."""
    if len(split.train) == 0 or len(split.test) == 0:
        raise LeakageError(f"split {split.name}: empty {'train' if len(split.train) == 0 else 'test'} side")
    if np.intersect1d(split.train, split.test).size:
        raise LeakageError(f"split {split.name}: the same row index is in train and test")
    columns = ["item"] + (["subject"] if by_subject else [])
    for column in columns:
        values = rows[column].to_numpy()
        both = np.intersect1d(values[split.train], values[split.test])
        if both.size:
            raise LeakageError(
                f"split {split.name}: {both.size} {column}(s) on both sides of the split, e.g. {both[0]!r}"
            )


def _finish(rows: pd.DataFrame, splits: list[Split], *, by_subject: bool = False) -> list[Split]:
    if not splits:
        raise FuseInputError("the protocol produced no split for these rows")
    for split in splits:
        check_split(rows, split, by_subject=by_subject)
    return splits


def _stratified_group_folds(items: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number of each unique item: shuffled, then dealt round-robin in label order (stratified, grouped)."""
    uniq, first = np.unique(items, return_index=True)
    perm = rng.permutation(len(uniq))
    by_label = perm[np.argsort(labels[first][perm], kind="stable")]
    fold_of_item = np.empty(len(uniq), dtype=np.int64)
    fold_of_item[by_label] = np.arange(len(uniq)) % k
    return fold_of_item[np.searchsorted(uniq, items)]


@PROTOCOLS.register("loso", subject_dependent=False)
def loso(rows: pd.DataFrame, y: np.ndarray, **_: Any) -> list[Split]:
    """Leave one subject out: one split per subject, trained on all the others."""
    subjects = rows["subject"].to_numpy()
    splits = []
    for subject in sorted(set(subjects.tolist())):
        test = np.flatnonzero(subjects == subject)
        train = np.flatnonzero(subjects != subject)
        splits.append(Split(name=str(subject), train=train, test=test))
    return _finish(rows, splits, by_subject=True)


@PROTOCOLS.register("kfold", subject_dependent=True)
def kfold(rows: pd.DataFrame, y: np.ndarray, *, k: int = 5, seed: int = 0, **_: Any) -> list[Split]:
    """Subject-dependent: within each subject, k folds of its trials (grouped by item, stratified by label)."""
    rng = np.random.default_rng(seed)
    subjects = rows["subject"].to_numpy()
    items = rows["item"].to_numpy()
    splits = []
    for subject in sorted(set(subjects.tolist())):
        idx = np.flatnonzero(subjects == subject)
        n_items = len(set(items[idx].tolist()))
        kk = min(k, n_items)
        if kk < 2:
            continue
        folds = _stratified_group_folds(items[idx], y[idx], kk, rng)
        for f in range(kk):
            splits.append(Split(name=f"{subject}/k{f + 1}", train=idx[folds != f], test=idx[folds == f]))
    if not splits:
        raise FuseInputError("kfold is subject-dependent and no subject has two or more trials (e.g. FER2013, where every "
                         "image is its own subject); use --protocol fer2013, dfew (the fold column) or loso")
    return _finish(rows, splits)


@PROTOCOLS.register("dfew", subject_dependent=False)
def official_folds(rows: pd.DataFrame, y: np.ndarray, **_: Any) -> list[Split]:
    """The dataset's own folds from the ``fold`` column (DFEW sets 1-5, RAVDESS actor groups): test = fold k,
    train = every other fold. Rows with fold -1 belong to no official fold and are not used."""
    fold = rows["fold"].to_numpy()
    ids = sorted(set(fold[fold >= 0].tolist()))
    if len(ids) < 2:
        raise FuseInputError("the dfew protocol needs the store's fold column (at least two folds); none found")
    splits = [
        Split(name=f"fold{f}", train=np.flatnonzero((fold >= 0) & (fold != f)), test=np.flatnonzero(fold == f))
        for f in ids
    ]
    return _finish(rows, splits)


@PROTOCOLS.register("fer2013", subject_dependent=False)
def fer2013_holdout(rows: pd.DataFrame, y: np.ndarray, **_: Any) -> list[Split]:
    """FER2013's usual hold-out: train on Training (fold 0), test on PrivateTest (fold 2). PublicTest (fold 1) is
    left out: tuning happens on an inner split of the training rows, as everywhere else."""
    fold = rows["fold"].to_numpy()
    train, test = np.flatnonzero(fold == 0), np.flatnonzero(fold == 2)
    if len(train) == 0 or len(test) == 0:
        raise FuseInputError("the fer2013 protocol needs fold 0 (Training) and fold 2 (PrivateTest) rows in the store; "
                         f"found folds {sorted(set(fold.tolist()))}")
    return _finish(rows, [Split(name="private-test", train=train, test=test)])


def trial_number(trial: str) -> int:
    """The trial number in a trial id such as "05", "s2t05" or "trial07" (its last run of digits)."""
    found = re.findall(r"\d+", str(trial))
    if not found:
        raise FuseInputError(f"trial id {trial!r} holds no trial number")
    return int(found[-1])


@PROTOCOLS.register("seedv-3fold", subject_dependent=True)
def seedv_three_fold(rows: pd.DataFrame, y: np.ndarray, **_: Any) -> list[Split]:
    """SEED-V's subject-dependent 3 folds: per subject, fold j = trials 5j-4..5j of every session; train on the
    other two folds of the same subject."""
    subjects = rows["subject"].to_numpy()
    numbers = np.array([trial_number(t) for t in rows["trial"].to_numpy()])
    if numbers.min() < 1 or numbers.max() > 15:
        raise FuseInputError(f"seedv-3fold expects trial numbers 1-15, found {numbers.min()}-{numbers.max()}")
    fold = (numbers - 1) // 5
    splits = []
    for subject in sorted(set(subjects.tolist())):
        idx = np.flatnonzero(subjects == subject)
        for f in range(3):
            test, train = idx[fold[idx] == f], idx[fold[idx] != f]
            if len(test) and len(train):
                splits.append(Split(name=f"{subject}/trials{5 * f + 1}-{5 * f + 5}", train=train, test=test))
    return _finish(rows, splits)


@PROTOCOLS.register("cross-session", subject_dependent=True)
def cross_session(rows: pd.DataFrame, y: np.ndarray, **_: Any) -> list[Split]:
    """Per subject: train on its other sessions, test on session s."""
    subjects = rows["subject"].to_numpy()
    sessions = rows["session"].to_numpy()
    splits = []
    for subject in sorted(set(subjects.tolist())):
        idx = np.flatnonzero(subjects == subject)
        for session in sorted(set(sessions[idx].tolist())):
            test, train = idx[sessions[idx] == session], idx[sessions[idx] != session]
            if len(test) and len(train):
                splits.append(Split(name=f"{subject}/session{session}", train=train, test=test))
    if not splits:
        raise FuseInputError("cross-session needs subjects with at least two sessions; every subject has one")
    return _finish(rows, splits)


def make_splits(name: str, rows: pd.DataFrame, y: np.ndarray, *, k: int = 5, seed: int = 0) -> list[Split]:
    """The splits of protocol ``name`` over ``rows`` (row order = ``y`` order)."""
    rows = rows.reset_index(drop=True)
    return PROTOCOLS.get(name)(rows, np.asarray(y), k=k, seed=seed)
