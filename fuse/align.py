"""Stores in, one aligned table out: the rows of every chosen modality pooled into shared windows of the same
seconds of the same item (EEG windows when there is an EEG store, else fixed windows on the item clock).

Pure array functions only (``pool_into_windows``, ``align``, ``to_trials``); reading stores is ``fuse.inputs``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fuse.inputs import FuseDataError, ModalityData, ordered

log = logging.getLogger(__name__)

META_COLUMNS = ("item", "subject", "session", "trial", "fold")


@dataclass
class AlignedTable:
    """Rows (windows or trials) with one feature matrix per role; a role's row is NaN where it is missing.

    ``rows`` has item, subject, session, trial, row, t_start_s, t_end_s, fold, the label_* columns and n_<role>
    (how many stored rows were pooled into the row). Rows are ordered by (item, t_start_s).
    For trial granularity, ``windows`` is the window-level table it was made from and ``members[i]`` the window
    rows of trial row i (the transformer reads sequences from there).
    """

    rows: pd.DataFrame
    features: dict[str, np.ndarray]
    granularity: str = "window"
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    windows: AlignedTable | None = None
    members: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def roles(self) -> tuple[str, ...]:
        return ordered(self.features)

    def available(self, role: str) -> np.ndarray:
        if role not in self.features:
            return np.zeros(len(self), dtype=bool)
        return np.isfinite(self.features[role]).all(axis=1)

    def label_names(self) -> list[str]:
        return [c[len("label_"):] for c in self.rows.columns if c.startswith("label_")]

    def sequence_index(self, context: int, max_len: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """For each row, the window rows of its trial the transformer reads, as (pool features, (n, L) index).

        Window granularity: ``context`` windows of the same trial centred on the row (-1 pads past the ends).
        Trial granularity: all windows of the trial, evenly subsampled to at most ``max_len``.
        """
        if self.granularity == "trial":
            assert self.windows is not None and self.members is not None
            length = max(1, min(max_len, max(len(m) for m in self.members)))
            index = np.full((len(self), length), -1, dtype=np.int64)
            for i, member in enumerate(self.members):
                if len(member) > length:
                    member = member[np.linspace(0, len(member) - 1, length).round().astype(int)]
                index[i, : len(member)] = member
            return self.windows.features, index
        context = max(1, int(context))
        codes, starts = _item_segments(self.rows["item"].to_numpy())
        counts = np.diff(np.append(starts, len(self)))
        pos = np.arange(len(self)) - starts[codes]
        n_item = counts[codes]
        offsets = np.arange(-((context - 1) // 2), context // 2 + 1)
        index = np.arange(len(self))[:, None] + offsets[None, :]
        inside = (pos[:, None] + offsets[None, :] >= 0) & (pos[:, None] + offsets[None, :] < n_item[:, None])
        return self.features, np.where(inside, index, -1)


def _item_segments(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..m-1 of consecutive runs of equal items, and the start index of each run (items must be grouped)."""
    change = np.ones(len(items), dtype=bool)
    change[1:] = items[1:] != items[:-1]
    starts = np.flatnonzero(change)
    codes = np.cumsum(change) - 1
    return codes, starts


def _midpoints(rows: pd.DataFrame) -> np.ndarray:
    return (rows["t_start_s"].to_numpy(dtype=np.float64) + rows["t_end_s"].to_numpy(dtype=np.float64)) / 2.0


def pool_into_windows(
    win_items: np.ndarray,
    win_start_s: np.ndarray,
    win_end_s: np.ndarray,
    row_items: np.ndarray,
    row_t_s: np.ndarray,
    row_valid: np.ndarray,
    embeddings: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the valid rows of the same item whose time t falls in [start, end) of each window.

    Returns (pooled (n_windows, dim) float32, NaN where no valid row fell in; counts (n_windows,) int).
    Windows may overlap (a row then counts in each). Vectorised: a sparse (windows x rows) membership matrix.
    """
    n_win = len(win_items)
    keys = pd.Index(np.unique(np.concatenate([np.unique(win_items), np.unique(row_items)])))
    win_codes, row_codes = keys.get_indexer(win_items), keys.get_indexer(row_items)
    order = np.lexsort((row_t_s, row_codes))  # rows by (item, time)
    s_codes, s_t = row_codes[order], row_t_s[order]
    bounds = np.searchsorted(s_codes, np.arange(len(keys) + 1))  # rows of item c: bounds[c]:bounds[c + 1]
    lo = np.zeros(n_win, dtype=np.int64)
    hi = np.zeros(n_win, dtype=np.int64)
    w_order = np.argsort(win_codes, kind="stable")
    w_bounds = np.searchsorted(win_codes[w_order], np.arange(len(keys) + 1))
    for c in np.flatnonzero((np.diff(w_bounds) > 0) & (np.diff(bounds) > 0)):
        ra, rb = bounds[c], bounds[c + 1]
        idx = w_order[w_bounds[c] : w_bounds[c + 1]]
        lo[idx] = ra + np.searchsorted(s_t[ra:rb], win_start_s[idx], side="left")
        hi[idx] = ra + np.searchsorted(s_t[ra:rb], win_end_s[idx], side="left")
    lengths = np.maximum(hi - lo, 0)
    total = int(lengths.sum())
    win_of = np.repeat(np.arange(n_win), lengths)
    ramp = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    members = order[np.repeat(lo, lengths) + ramp]
    keep = row_valid[members]
    win_of, members = win_of[keep], members[keep]
    counts = np.bincount(win_of, minlength=n_win)
    matrix = sp.csr_matrix(
        (np.ones(len(members), dtype=np.float32), (win_of, members)), shape=(n_win, len(row_items))
    )
    # sparse @ dense reads only the stored entries: invalid rows (NaN embeddings) are never touched
    sums = np.asarray(matrix @ np.asarray(embeddings, dtype=np.float32), dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = sums / counts[:, None].astype(np.float32)
    pooled[counts == 0] = np.nan
    return pooled, counts


def _base_rows(rows: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in (*META_COLUMNS, "row", "t_start_s", "t_end_s") if c in rows]
    cols += [c for c in rows.columns if c.startswith("label_")]
    out = rows[cols].reset_index(drop=True).copy()
    if "fold" not in out:
        out["fold"] = -1
    return out


def _fixed_windows(rows: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Windows [k*w, (k+1)*w) on the item clock that hold at least one of ``rows`` (0: the rows themselves)."""
    rows = rows.reset_index(drop=True)
    t = _midpoints(rows)
    if window_s <= 0:
        return _base_rows(rows)
    k = np.floor(t / window_s).astype(np.int64)
    frame = pd.DataFrame({"item": rows["item"].to_numpy(), "k": k, "pos": np.arange(len(rows))})
    first = frame.groupby(["item", "k"], sort=True)["pos"].min()
    pos = first.to_numpy()
    base = _base_rows(rows.iloc[pos])
    kk = first.index.get_level_values("k").to_numpy()
    base["t_start_s"] = kk * window_s
    base["t_end_s"] = (kk + 1) * window_s
    base["row"] = base.groupby("item").cumcount().to_numpy()
    return base


def _clock_rows(by_role: dict[str, ModalityData], window_s: float) -> pd.DataFrame:
    """The shared windows when there is no EEG store: fixed windows over the rows of every modality (``window_s``
    0: the stored rows of the first modality, one window each)."""
    if window_s <= 0:
        return _fixed_windows(by_role[ordered(by_role)[0]].rows, 0)
    frames = [_base_rows(d.rows) for d in by_role.values()]
    label_cols = [c for f in frames for c in f.columns if c.startswith("label_")]
    frames = [f.reindex(columns=list(dict.fromkeys([*f.columns, *label_cols]))) for f in frames]
    both = pd.concat(frames, ignore_index=True)
    both = both.iloc[np.lexsort((_midpoints(both), both["item"].to_numpy()))]
    return _fixed_windows(both, window_s)


def _one_per_role(modalities: Sequence[ModalityData]) -> dict[str, ModalityData]:
    """The stores by modality; refuses two of one modality, none, or stores of different datasets."""
    by_role: dict[str, ModalityData] = {}
    for data in modalities:
        if data.role in by_role:
            raise FuseDataError(
                f"two {data.role} stores given ({by_role[data.role].path or by_role[data.role].kind} and "
                f"{data.path or data.kind}); pass exactly one per modality"
            )
        by_role[data.role] = data
    if not by_role:
        raise FuseDataError("no store given")
    datasets = {d.dataset for d in by_role.values()}
    if len(datasets) > 1:
        raise FuseDataError(f"stores of different datasets given: {sorted(datasets)}")
    return by_role


def _eeg_windows(eeg: ModalityData) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The EEG store's rows as the windows, by (item, t_start_s): (rows with n_eeg, features, row order)."""
    order = np.lexsort((eeg.rows["t_start_s"].to_numpy(), eeg.rows["item"].to_numpy()))
    base = _base_rows(eeg.rows.iloc[order])
    emb = eeg.embeddings[order].copy()
    valid = eeg.valid()[order]
    emb[~valid] = np.nan
    base["n_eeg"] = valid.astype(np.int64)
    return base, emb, order


def _role_features(
    data: ModalityData, base: pd.DataFrame, order: np.ndarray, unpooled: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(features, counts) of one modality on the windows ``base``; ``unpooled``: one window per stored row, in
    ``order``, so nothing is pooled."""
    if unpooled:
        valid = data.valid()[order]
        pooled = data.embeddings[order].copy()
        pooled[~valid] = np.nan
        return pooled, valid.astype(np.int64)
    return pool_into_windows(
        base["item"].to_numpy(),
        base["t_start_s"].to_numpy(dtype=np.float64),
        base["t_end_s"].to_numpy(dtype=np.float64),
        data.rows["item"].to_numpy(),
        _midpoints(data.rows),
        data.valid(),
        data.embeddings,
    )


def align(modalities: Sequence[ModalityData], window_s: float = 1.0) -> AlignedTable:
    """The window-level aligned table of one store per modality (any number of modalities) of one dataset.

    With an EEG store its rows are the windows; every other modality's valid rows of the same item whose
    mid-time falls in a window are averaged into it (``n_<modality>`` counts them). Without one, the windows are
    fixed ``window_s`` windows on the item clock holding a row of any modality (0: one row per stored row of the
    first modality). Items of other modalities that the EEG store lacks are not used (logged).
    """
    by_role = _one_per_role(modalities)
    features: dict[str, np.ndarray] = {}
    if "eeg" in by_role:
        base, features["eeg"], order = _eeg_windows(by_role["eeg"])
    else:
        base = _clock_rows(by_role, window_s)
        order = np.lexsort((np.arange(len(base)), base["t_start_s"].to_numpy(), base["item"].to_numpy()))
        base = base.iloc[order].reset_index(drop=True)
    first = ordered(by_role)[0]
    for role in ordered(by_role):
        if role == "eeg":
            continue
        data = by_role[role]
        unpooled = "eeg" not in by_role and window_s <= 0 and role == first  # one row per stored row
        features[role], counts = _role_features(data, base, order, unpooled)
        base[f"n_{role}"] = counts.astype(np.int64)
        if "eeg" in by_role:
            orphan = sorted(set(data.rows["item"].unique()) - set(base["item"].unique()))
            if orphan:
                log.warning("%d %s item(s) have no EEG rows and are not used (e.g. %s)", len(orphan), role, orphan[0])
    sources = {role: by_role[role].source() for role in ordered(by_role)}
    table = AlignedTable(rows=base.reset_index(drop=True), features=features, granularity="window", sources=sources)
    for role in table.roles:
        missing = int((~table.available(role)).sum())
        if missing:
            log.info("%d of %d windows have no %s features", missing, len(table), role)
    return table


def to_trials(table: AlignedTable) -> AlignedTable:
    """One row per item: each role's features averaged over the item's windows, weighted by what was pooled
    into them (so a trial's face vector is the mean of all its valid frames inside the EEG windows)."""
    if table.granularity != "window":
        raise FuseDataError("to_trials needs a window-level table")
    items = table.rows["item"].to_numpy()
    codes, starts = _item_segments(items)
    n_items = len(starts)
    trial_rows = table.rows.iloc[starts].reset_index(drop=True).copy()
    ends = np.append(starts[1:], len(table))
    trial_rows["t_start_s"] = table.rows["t_start_s"].to_numpy()[starts]
    trial_rows["t_end_s"] = table.rows.groupby(codes)["t_end_s"].max().to_numpy()
    trial_rows["row"] = 0
    features = {}
    for role, feats in table.features.items():
        count_col = f"n_{role}"
        weights = table.rows[count_col].to_numpy(dtype=np.float64) if count_col in table.rows else np.ones(len(table))
        ok = np.isfinite(feats).all(axis=1) & (weights > 0)
        w = np.where(ok, weights, 0.0).astype(np.float32)
        matrix = sp.csr_matrix((w, (codes, np.arange(len(table)))), shape=(n_items, len(table)))
        sums = np.asarray(matrix @ np.where(ok[:, None], feats, 0.0).astype(np.float32), dtype=np.float32)
        total = np.asarray(matrix.sum(axis=1)).reshape(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / total[:, None].astype(np.float32)
        mean[total == 0] = np.nan
        features[role] = mean.astype(np.float32)
        if count_col in table.rows:
            trial_rows[count_col] = np.bincount(codes, weights=np.where(ok, weights, 0), minlength=n_items).astype(
                np.int64
            )
    members = [np.arange(a, b) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    return AlignedTable(
        rows=trial_rows, features=features, granularity="trial", sources=table.sources, windows=table, members=members
    )

