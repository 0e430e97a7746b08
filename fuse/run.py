"""One fusion run end to end: stores -> aligned table -> target -> protocol splits -> strategy per split ->
predictions, metrics with the majority baseline, a final model, and the results directory."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from fuse.align import AlignedTable, align, to_trials
from fuse.config import SINGLE_MODALITY, FuseConfig, config_to_dict
from fuse.inputs import FuseDataError, ModalityData, find_stores, load_store, ordered, roles_for
from fuse.interpret import reliability, subject_spread, write_interpretation
from fuse.metrics import fold_table, majority_class, subject_table, summarise
from fuse.models import FusionModel, save_model
from fuse.protocols import Split, make_splits
from fuse.replay import check_recorded_paths, check_stores, record_inputs
from fuse.results import check_out_free, write_results
from fuse.strategies import Inputs, create_strategy
from fuse.targets import Target, make_target

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out: Path | None
    config: FuseConfig
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    per_fold: pd.DataFrame
    per_subject: pd.DataFrame
    table: AlignedTable
    final_model: FusionModel | None


def resolve(cfg: FuseConfig) -> FuseConfig:
    """The config as it will be recorded: classifier and output directory made concrete."""
    return dataclasses.replace(cfg, classifier=cfg.classifier_name, out=cfg.out or cfg.default_out())


def load_modalities(cfg: FuseConfig) -> list[ModalityData]:
    """Read one store per modality of the run (``cfg.modalities``, or every modality found); single-modality
    strategies read the others too, so their rows are the same windows as a fusion run's."""
    if cfg.expect_stores:  # a replay: the recorded stores, checked before anything is read
        check_recorded_paths(cfg.expect_stores)
    paths = find_stores(cfg.stores, cfg.cache or None, cfg.dataset, roles=cfg.modalities)
    if cfg.expect_stores:
        check_stores(cfg.expect_stores, paths)
    needed, _ = roles_for(cfg.strategy, list(paths))
    needed = tuple(cfg.modalities) if cfg.aligned_all and cfg.modalities else needed
    missing = [r for r in needed if r not in paths]
    have = ", ".join(f"{r}: {p}" for r, p in paths.items()) or "none"
    if missing or not paths:
        raise FuseDataError(f"strategy {cfg.strategy!r} needs a {' and a '.join(missing or ('eeg', 'face'))} store; "
                            f"found {have}")
    if cfg.strategy in ("early", "transformer") and len(paths) < 2:
        raise FuseDataError(f"strategy {cfg.strategy!r} fuses two or more modalities; found only {have}")
    out = []
    for role, path in paths.items():
        start = time.perf_counter()
        out.append(load_store(path))
        limits = cfg.quality_limits()
        for name, dropped in out[-1].filter_quality(limits).items():
            log.info("%s store %s: %d face row(s) excluded by %s=%g", role, path, dropped, name, limits[name])
        log.info("read %s store %s (%d rows) in %.1f s", role, path, len(out[-1].rows), time.perf_counter() - start)
    return out


def used_rows(table: AlignedTable, target: Target, cfg: FuseConfig) -> tuple[np.ndarray, dict[str, int]]:
    """Rows the run uses and how many were dropped for what (explicit missing-modality policy)."""
    needed, _ = roles_for(cfg.strategy, table.roles)
    if cfg.aligned_all:
        needed = table.roles
    keep = target.codes >= 0
    counts = {"total": len(table), "dropped_missing_label": int((~keep).sum())}
    for role in needed:
        ok = table.available(role)
        counts[f"dropped_missing_{role}"] = int((keep & ~ok).sum())
        keep &= ok
    if cfg.strategy == "late":  # late fusion uses what a row has; a row with none cannot be scored
        any_role = np.zeros(len(table), dtype=bool)
        for role in table.roles:
            any_role |= table.available(role)
        counts["dropped_no_modality"] = int((keep & ~any_role).sum())
        keep &= any_role
        for role in table.roles:
            counts[f"late_rows_without_{role}"] = int((keep & ~table.available(role)).sum())
    counts["used"] = int(keep.sum())
    for name, n in counts.items():
        if name.startswith("dropped") and n:
            log.warning("%d of %d rows dropped: %s", n, len(table), name.removeprefix("dropped_").replace("_", " "))
    return np.flatnonzero(keep), counts


def make_inputs(table: AlignedTable, idx: np.ndarray, cfg: FuseConfig) -> Inputs:
    """Inputs of the used rows: only the modalities the strategy reads; sequences for the transformer."""
    _, reads = roles_for(cfg.strategy, table.roles)
    features = {r: table.features[r][idx] for r in reads if r in table.features}
    rows = table.rows.iloc[idx]
    inputs = Inputs(features=features, groups=rows["item"].to_numpy(), subjects=rows["subject"].to_numpy())
    if cfg.strategy == "transformer":
        pools, index = table.sequence_index(cfg.transformer.context, cfg.transformer.max_len)
        inputs.seq_pools = {r: pools[r] for r in reads}
        inputs.seq_index = index[idx]
        inputs.features = {}
    return inputs


@contextlib.contextmanager
def compute_threads(jobs: int, torch_threads: int) -> Iterator[None]:
    """With several folds at once, each gets one BLAS thread (and torch keeps ``torch_threads``, set once here so
    concurrent folds never change it under each other)."""
    if jobs <= 1:
        yield
        return
    from fuse.train import torch_threads as set_torch_threads

    with threadpool_limits(limits=max(1, (os.cpu_count() or 1) // jobs)), set_torch_threads(torch_threads or 1):
        yield


@dataclass
class _Prepared:
    """The used rows of one run's aligned table: target, labels, strategy inputs and protocol splits."""

    table: AlignedTable
    target: Target
    row_counts: dict[str, int]
    rows: pd.DataFrame
    y: np.ndarray
    inputs: Inputs
    splits: list[Split]

    @property
    def n_classes(self) -> int:
        return len(self.target.classes)


@dataclass
class _Scores:
    """Cross-validated predictions and what they sum up to."""

    predictions: pd.DataFrame
    summary: dict[str, Any]
    per_fold: pd.DataFrame
    per_subject: pd.DataFrame
    flagged: list[str]
    ece: float
    attention: dict[str, dict[str, np.ndarray]]


def run_fuse(cfg: FuseConfig, modalities: Sequence[ModalityData] | None = None, *, write: bool = True,
             overwrite: bool = False) -> RunResult:
    """Run ``cfg``. ``modalities`` (already loaded stores) bypass the store look-up; ``write=False`` keeps it in
    memory (no results directory). An existing results directory is refused (before any work) unless
    ``overwrite``."""
    cfg = resolve(cfg)
    if write:
        check_out_free(cfg.out, overwrite)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    modalities = _run_modalities(cfg, modalities)
    if cfg.temporal != "none":  # one prediction per clip from its frame sequence
        from fuse.temporal import run_temporal

        return run_temporal(cfg, list(modalities), write=write)
    if cfg.test_stores:  # train on one dataset, test on another
        from fuse.cross_dataset import load_test_modalities, run_cross_dataset

        return run_cross_dataset(cfg, modalities, load_test_modalities(cfg), write=write)
    timings["load_s"] = time.perf_counter() - t0
    cfg = record_inputs(cfg, modalities)  # what config.yaml records: absolute store paths and fingerprints

    t0 = time.perf_counter()
    prep = _prepare(cfg, modalities)
    timings["align_s"] = time.perf_counter() - t0
    log.info("%s: %d rows (%d items, %d subjects), %d classes, %d splits", cfg.protocol, len(prep.rows),
             prep.rows["item"].nunique(), prep.rows["subject"].nunique(), prep.n_classes, len(prep.splits))

    t0 = time.perf_counter()
    scores = _cross_validate(cfg, prep)
    timings["cv_s"] = time.perf_counter() - t0

    final: FusionModel | None = None
    if cfg.save_final:
        t0 = time.perf_counter()
        final = _final_model(cfg, prep)
        timings["final_fit_s"] = time.perf_counter() - t0
    metrics = _metrics(cfg, prep, scores, timings, dataset=modalities[0].dataset)
    out = _write(cfg, prep, scores, metrics, final, overwrite) if write else None
    return RunResult(out=out, config=cfg, metrics=metrics, predictions=scores.predictions, per_fold=scores.per_fold,
                     per_subject=scores.per_subject, table=prep.table, final_model=final)


def _run_modalities(cfg: FuseConfig, modalities: Sequence[ModalityData] | None) -> Sequence[ModalityData]:
    """The stores the run reads: ``modalities`` given (only those of ``cfg.modalities`` when set), else loaded."""
    if modalities is None:
        return load_modalities(cfg)
    if cfg.modalities:
        return [m for m in modalities if m.role in cfg.modalities]
    return modalities


def _prepare(cfg: FuseConfig, modalities: Sequence[ModalityData]) -> _Prepared:
    """Aligned table, target, used rows and protocol splits of a run over ``modalities``."""
    table = align(modalities, window_s=cfg.window_s)
    if cfg.granularity == "trial":
        table = to_trials(table)
    recorded = [m.manifest.get("label_names", {}).get(cfg.target) for m in modalities]
    target = make_target(table.rows, cfg.target, threshold=cfg.threshold, side=cfg.threshold_side,
                         dataset=modalities[0].dataset, class_names=next((names for names in recorded if names), None))
    idx, row_counts = used_rows(table, target, cfg)
    if len(idx) == 0:
        raise FuseDataError("no usable rows: every row lacks the label or a modality the strategy needs")
    rows = table.rows.iloc[idx].reset_index(drop=True)
    y = target.codes[idx]
    inputs = make_inputs(table, idx, cfg)
    splits = make_splits(cfg.protocol, rows, y, k=cfg.k, seed=cfg.seed)
    return _Prepared(table=table, target=target, row_counts=row_counts, rows=rows, y=y, inputs=inputs, splits=splits)


def _run_split(cfg: FuseConfig, prep: _Prepared, i: int, train_classes: dict[str, int], wanted_maps: set[str],
               attention: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """Fit on split ``i``'s training rows, predict its test rows: their prediction table."""
    split, y, inputs, n_classes = prep.splits[i], prep.y, prep.inputs, prep.n_classes
    strategy = create_strategy(cfg, n_classes, seed=cfg.seed + i)
    strategy.fit(inputs.take(split.train), y[split.train])
    proba = strategy.predict_proba(inputs.take(split.test))
    part = prep.rows.iloc[split.test][["item", "subject", "session", "trial", "row", "t_start_s", "t_end_s"]].copy()
    part.insert(2, "fold", split.name)
    part["y_true"] = y[split.test]
    part["y_pred"] = proba.argmax(axis=1)
    part["y_baseline"] = majority_class(y[split.train], n_classes)
    for c in range(n_classes):
        part[f"p_{prep.target.classes[c]}"] = proba[:, c]
    if hasattr(strategy, "modality_proba"):  # late fusion: each branch's own prediction beside the fused one
        for role, p in strategy.modality_proba(inputs.take(split.test)).items():
            has = np.isfinite(p).all(axis=1)
            part[f"y_pred_{role}"] = np.where(has, np.nan_to_num(p).argmax(axis=1), -1)
    train_classes[split.name] = int(len(np.unique(y[split.train])))
    if hasattr(strategy, "explain"):
        _explain(strategy, inputs.take(split.test), part, i, wanted_maps, attention)
    log.debug("split %s: acc %.3f", split.name, float((part["y_true"] == part["y_pred"]).mean()))
    return part


def _cross_validate(cfg: FuseConfig, prep: _Prepared) -> _Scores:
    """Every split fitted and tested (logreg folds several at once), and the scores of their predictions."""
    attention: dict[str, dict[str, np.ndarray]] = {}
    wanted_maps = set(cfg.attention_items)
    train_classes: dict[str, int] = {}

    def run_split(i: int) -> pd.DataFrame:
        return _run_split(cfg, prep, i, train_classes, wanted_maps, attention)

    n_splits = len(prep.splits)
    # torch draws initial weights and dropout masks from one global generator: torch heads train one fold at a time
    jobs = 1 if cfg.classifier != "logreg" else min(cfg.jobs or min(os.cpu_count() or 1, 4), n_splits)
    with compute_threads(jobs, cfg.train.threads):
        if jobs > 1:  # folds are independent and seeded by their index: same results in any order
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                parts = list(pool.map(run_split, range(n_splits)))
        else:
            parts = [run_split(i) for i in range(n_splits)]
    predictions = pd.concat(parts, ignore_index=True)
    if predictions.duplicated(["item", "row"]).any():  # every protocol tests each row once
        raise AssertionError("a row was tested in more than one split")
    return _score(predictions, prep, train_classes, attention)


def _score(predictions: pd.DataFrame, prep: _Prepared, train_classes: dict[str, int],
           attention: dict[str, dict[str, np.ndarray]]) -> _Scores:
    """Summary, per-fold and per-subject tables, single-class folds and calibration of the predictions."""
    proba_cols = [f"p_{c}" for c in prep.target.classes]
    summary = summarise(predictions, prep.n_classes, proba_cols)
    per_fold = fold_table(predictions)
    per_subject = subject_table(predictions)
    per_fold["n_train_classes"] = per_fold["fold"].map(train_classes)
    per_fold["single_class"] = (per_fold["n_test_classes"] < 2) | (per_fold["n_train_classes"] < 2)
    flagged = per_fold.loc[per_fold["single_class"], "fold"].astype(str).tolist()
    if flagged:
        log.warning("%d of %d folds have a single class on a side (accuracy there says little): %s", len(flagged),
                    len(per_fold), ", ".join(flagged[:10]) + (" ..." if len(flagged) > 10 else ""))
    proba_all = predictions[proba_cols].to_numpy()
    _, ece = reliability(proba_all, predictions["y_true"].to_numpy())
    return _Scores(predictions=predictions, summary=summary, per_fold=per_fold, per_subject=per_subject,
                   flagged=flagged, ece=ece, attention=attention)


def _final_model(cfg: FuseConfig, prep: _Prepared) -> FusionModel:
    """The strategy fitted on every used row, with what `pipeline predict` needs to use it."""
    strategy = create_strategy(cfg, prep.n_classes, seed=cfg.seed)
    strategy.fit(prep.inputs, prep.y)
    return FusionModel(strategy, model_info(cfg, prep.table, prep.target, strategy))


def _metrics(cfg: FuseConfig, prep: _Prepared, scores: _Scores, timings: dict[str, float],
             dataset: str) -> dict[str, Any]:
    """metrics.json of the run."""
    table, rows = prep.table, prep.rows
    return {
        "strategy": cfg.strategy, "classifier": cfg.classifier, "protocol": cfg.protocol,
        "granularity": cfg.granularity, "dataset": dataset, "seed": cfg.seed,
        "target": prep.target.describe(), "classes": list(prep.target.classes), "rows": prep.row_counts,
        "n_items": int(rows["item"].nunique()), "n_subjects": int(rows["subject"].nunique()),
        "n_folds": len(prep.splits), **scores.summary, "timing_s": timings,
        "modalities": [cfg.strategy] if cfg.strategy in SINGLE_MODALITY else list(table.roles),
        "across_subjects": subject_spread(scores.per_subject), "calibration": {"ece": scores.ece, "n_bins": 10},
        "single_class_folds": scores.flagged,
        "stores": {role: {"fingerprint": s["fingerprint"], "path": s["path"]} for role, s in table.sources.items()},
    }


def _write(cfg: FuseConfig, prep: _Prepared, scores: _Scores, metrics: dict[str, Any], final: FusionModel | None,
           overwrite: bool) -> Path:
    """The results directory (config, metrics, tables, splits, model, report); tracked when ``cfg.track``."""
    classes = list(prep.target.classes)
    out = write_results(
        cfg.out, config=config_to_dict(cfg), metrics=metrics, per_fold=scores.per_fold,
        per_subject=scores.per_subject, predictions=scores.predictions,
        splits=[s.manifest(prep.rows) for s in prep.splits], stores=prep.table.sources, classes=classes,
        save_model=(lambda d: save_model(final.strategy, final.info, d)) if final is not None else None,
        overwrite=overwrite,
        extra=lambda d: write_interpretation(d, predictions=scores.predictions, per_subject=scores.per_subject,
                                             classes=classes, title=_title(cfg, prep.target),
                                             attention=scores.attention),
    )
    log.info("results in %s", out)
    if cfg.track != "none":
        from fuse.tracking import track_run

        track_run(cfg, out, metrics, scores.per_fold)
    return out


def _title(cfg: FuseConfig, target: Target) -> str:
    model = cfg.strategy if cfg.classifier in (cfg.strategy, "auto") else f"{cfg.strategy}/{cfg.classifier}"
    return f"{model} {target.name} {cfg.protocol} ({cfg.granularity})"


def _explain(strategy: Any, test: Inputs, part: pd.DataFrame, fold: int, wanted: set[str],
             attention: dict[str, dict[str, np.ndarray]]) -> None:
    """Gate weights into ``part``; attention maps of the wanted items in this fold (default: the first test item of
    the first two folds; the middle row of a window-level item)."""
    items = part["item"].to_numpy()
    chosen = [it for it in dict.fromkeys(items.tolist()) if it in wanted] if wanted else (
        [items[0]] if fold < 2 and len(items) else [])
    rows = np.array([np.flatnonzero(items == it)[len(np.flatnonzero(items == it)) // 2] for it in chosen], dtype=int)
    found = strategy.explain(test, rows)
    for i, role in enumerate(strategy.roles):  # one gate column per modality, in the net's order
        part[f"gate_{role}"] = found["gate"][:, i]
    for k, item in enumerate(chosen):
        attention[str(item)] = {name: maps[k] for name, maps in found.items() if name != "gate"}


def model_info(cfg: FuseConfig, table: AlignedTable, target: Target, strategy: Any) -> dict[str, Any]:
    """What a later `pipeline predict` needs to rebuild features for this model and name its outputs."""
    reads = list(getattr(strategy, "branches", None) or strategy.roles)
    inputs = {}
    for role in reads:
        source = table.sources[role]
        manifest = source["manifest"]
        inputs[role] = {
            "kind": source["kind"], "dataset": source["dataset"], "fingerprint": source["fingerprint"],
            "dim": source["dim"], "extractor": manifest.get("extractor"), "model": manifest.get("model", {}),
            "config": manifest.get("config", {}), "preprocessing": manifest.get("preprocessing", {}),
            "pooling": _pooling_note(cfg, table, role),
        }
    return {"strategy": cfg.strategy, "classifier": cfg.classifier, "roles": reads, "classes": list(target.classes),
            "target": target.describe(), "granularity": cfg.granularity, "window_s": cfg.window_s,
            "sequence": {"context": cfg.transformer.context, "max_len": cfg.transformer.max_len}
            if cfg.strategy == "transformer" else None,
            "inputs": inputs, "config": config_to_dict(cfg)}


def _pooling_note(cfg: FuseConfig, table: AlignedTable, role: str) -> str:
    has_eeg = "eeg" in table.sources
    if role == "eeg":
        per = "one EEG window" if cfg.granularity == "window" else "mean of the trial's EEG windows"
        return f"{per} (store rows as they are)"
    first = ordered(table.sources)[0]
    base = ("the EEG windows" if has_eeg else
            (f"fixed {cfg.window_s:g} s windows on the item clock" if cfg.window_s > 0
             else f"each stored {first} row"))
    pooled = "mean of valid rows (finite; q_face_found where recorded) whose mid-time falls in"
    if cfg.granularity == "trial":
        return f"per trial: {pooled} {base}, averaged over the trial (weighted by rows)"
    return f"{pooled} {base}"
