"""Cross-dataset protocol: train on every usable row of one dataset's stores, test on another dataset's stores,
with a label mapping from the training classes to the test classes.

The model's probabilities are summed into the test classes through the mapping (several training classes may
map to one test class, e.g. DFEW's 7 classes to positive/negative); test rows whose true class no training class
maps to (RAVDESS "calm" under FER2013 -> RAVDESS) are not scored and are counted in ``rows``. The baseline is the
training majority class, mapped. One split ("cross-dataset") goes into the usual results directory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fuse.align import AlignedTable, align, to_trials
from fuse.config import FuseConfig, config_to_dict
from fuse.inputs import FuseDataError, ModalityData, find_stores, load_store, roles_for
from fuse.metrics import fold_table, majority_class, subject_table, summarise
from fuse.targets import Target, make_target

log = logging.getLogger(__name__)

# training class name -> test class name. FER2013 -> RAVDESS: the seven shared emotions by name (RAVDESS "calm"
# has no FER2013 counterpart and is not scored). DFEW 7 -> 2: DFEW's own 2-class preset (positive = happy, neutral,
# surprise; negative = sad, angry, disgust, fear), the same table as extract.datasets.dfew.LABEL_PRESETS[2].
LABEL_MAPS: dict[str, dict[str, str]] = {
    "fer2013-ravdess": {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "sad": "sad",
                        "surprise": "surprised", "neutral": "neutral"},
    "dfew7-2": {"happy": "positive", "neutral": "positive", "surprise": "positive", "sad": "negative",
                "angry": "negative", "disgust": "negative", "fear": "negative"},
    "identity": {},
}


def resolve_map(name: str, source: Sequence[str], target: Sequence[str]) -> dict[str, str]:
    """The mapping ``name`` restricted to the classes at hand; ``identity`` maps equal names."""
    if name not in LABEL_MAPS:
        raise FuseDataError(f"label map {name!r} is not one of {', '.join(sorted(LABEL_MAPS))}")
    table = LABEL_MAPS[name] or {c: c for c in source}
    mapping = {s: t for s, t in table.items() if s in source and t in target}
    if not mapping:
        raise FuseDataError(f"label map {name!r} maps none of the training classes {list(source)} to the test "
                            f"classes {list(target)}")
    return mapping


def map_probabilities(proba: np.ndarray, source: Sequence[str], target: Sequence[str],
                      mapping: Mapping[str, str]) -> np.ndarray:
    """(n, len(source)) probabilities -> (n, len(target)): each test class gets the sum of the training classes
    mapped to it, renormalised over the mapped classes (unmapped training classes are dropped)."""
    matrix = np.zeros((len(source), len(target)))
    for s, t in mapping.items():
        matrix[list(source).index(s), list(target).index(t)] = 1.0
    out = np.asarray(proba, dtype=np.float64) @ matrix
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.full_like(out, 1.0 / len(target)), where=total > 0)


def _table_and_target(cfg: FuseConfig, modalities: Sequence[ModalityData]) -> tuple[AlignedTable, Target, np.ndarray]:
    from fuse.run import used_rows

    table = align(modalities, window_s=cfg.window_s)
    if cfg.granularity == "trial":
        table = to_trials(table)
    recorded = [m.manifest.get("label_names", {}).get(cfg.target) for m in modalities]
    target = make_target(table.rows, cfg.target, threshold=cfg.threshold, side=cfg.threshold_side,
                         dataset=modalities[0].dataset, class_names=next((n for n in recorded if n), None))
    idx, _ = used_rows(table, target, cfg)
    return table, target, idx


def load_test_modalities(cfg: FuseConfig) -> list[ModalityData]:
    """The test dataset's stores (``cfg.test_stores``), one per role the strategy reads."""
    _, wanted = roles_for(cfg.strategy)
    paths = find_stores(cfg.test_stores, None, "", roles=wanted)
    return [load_store(p) for p in paths.values()]


def _fit_and_predict(cfg: FuseConfig, tr: tuple[AlignedTable, Target, np.ndarray],
                     te: tuple[AlignedTable, Target, np.ndarray],
                     mapping: dict[str, str], base_default: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Fit on the training rows, predict the test rows through ``mapping``: (predictions, mapped probabilities)."""
    from fuse.run import make_inputs
    from fuse.strategies import create_strategy

    (tr_table, tr_target, tr_idx), (te_table, te_target, te_idx) = tr, te
    y_tr = tr_target.codes[tr_idx]
    strategy = create_strategy(cfg, len(tr_target.classes), seed=cfg.seed)
    strategy.fit(make_inputs(tr_table, tr_idx, cfg), y_tr)
    proba_src = strategy.predict_proba(make_inputs(te_table, te_idx, cfg))
    proba = map_probabilities(proba_src, tr_target.classes, te_target.classes, mapping)
    base_src = tr_target.classes[majority_class(y_tr, len(tr_target.classes))]
    base = te_target.classes.index(mapping[base_src]) if base_src in mapping else base_default

    rows = te_table.rows.iloc[te_idx].reset_index(drop=True)
    predictions = rows[["item", "subject", "session", "trial", "row", "t_start_s", "t_end_s"]].copy()
    predictions.insert(2, "fold", "cross-dataset")
    predictions["y_true"], predictions["y_pred"], predictions["y_baseline"] = (
        te_target.codes[te_idx], proba.argmax(axis=1), base)
    for c, name in enumerate(te_target.classes):
        predictions[f"p_{name}"] = proba[:, c]
    return predictions, proba


def run_cross_dataset(cfg: FuseConfig, train: Sequence[ModalityData], test: Sequence[ModalityData],
                      *, write: bool = True) -> Any:
    """Fit ``cfg.strategy`` on all of ``train``, score ``test`` through ``cfg.label_map``; a ``RunResult``."""
    from fuse.interpret import reliability, subject_spread
    from fuse.run import RunResult, resolve

    cfg = resolve(cfg)
    if cfg.strategy == "transformer":
        raise FuseDataError("the cross-dataset protocol takes the single-modality, early and late strategies")
    tr_table, tr_target, tr_idx = _table_and_target(cfg, train)
    te_table, te_target, te_idx = _table_and_target(cfg, test)
    if len(tr_idx) == 0 or len(te_idx) == 0:
        raise FuseDataError(f"cross-dataset: {len(tr_idx)} usable training rows, {len(te_idx)} test rows")
    mapping = resolve_map(cfg.label_map, tr_target.classes, te_target.classes)
    scored_classes = sorted({te_target.classes.index(t) for t in mapping.values()})
    scored = np.isin(te_target.codes[te_idx], scored_classes)
    te_idx = te_idx[scored]
    if len(te_idx) == 0:
        raise FuseDataError("cross-dataset: no test row has a class the label map reaches")
    predictions, proba = _fit_and_predict(cfg, (tr_table, tr_target, tr_idx), (te_table, te_target, te_idx),
                                          mapping, int(scored_classes[0]))
    proba_cols = [f"p_{c}" for c in te_target.classes]
    summary = summarise(predictions, len(te_target.classes), proba_cols)
    per_fold, per_subject = fold_table(predictions), subject_table(predictions)
    per_fold["n_train_classes"] = int(len(np.unique(tr_target.codes[tr_idx])))
    per_fold["single_class"] = (per_fold["n_test_classes"] < 2) | (per_fold["n_train_classes"] < 2)
    _, ece = reliability(proba, te_target.codes[te_idx])
    metrics: dict[str, Any] = {
        "strategy": cfg.strategy, "classifier": cfg.classifier, "protocol": "cross-dataset",
        "granularity": cfg.granularity, "dataset": f"{train[0].dataset}->{test[0].dataset}", "seed": cfg.seed,
        "target": te_target.describe(), "train_target": tr_target.describe(), "classes": list(te_target.classes),
        "label_map": {"name": cfg.label_map, "mapping": mapping},
        "rows": {"train": int(len(tr_idx)), "test_used": int(len(te_idx)), "total": int(len(te_table)),
                 "used": int(len(te_idx)), "test_unmapped_class": int((~scored).sum())},
        "n_items": int(predictions["item"].nunique()), "n_subjects": int(predictions["subject"].nunique()),
        "n_folds": 1, **summary, "across_subjects": subject_spread(per_subject),
        "calibration": {"ece": ece, "n_bins": 10},
        "single_class_folds": per_fold.loc[per_fold["single_class"], "fold"].tolist(),
        "stores": {f"{side}.{role}": {"fingerprint": s["fingerprint"], "path": s["path"]}
                   for side, tab in (("train", tr_table), ("test", te_table)) for role, s in tab.sources.items()},
    }
    out = None
    if write:
        out = _write(cfg, (tr_table, tr_idx), te_table, te_target, predictions, per_fold, per_subject, metrics)
    return RunResult(out=out, config=cfg, metrics=metrics, predictions=predictions, per_fold=per_fold,
                     per_subject=per_subject, table=te_table, final_model=None)


def _write(cfg: FuseConfig, train: tuple[AlignedTable, np.ndarray], te_table: AlignedTable, te_target: Target,
           predictions: pd.DataFrame, per_fold: pd.DataFrame, per_subject: pd.DataFrame,
           metrics: dict[str, Any]) -> Path:
    """The results directory of a cross-dataset run: its one split, both sides' stores, the report."""
    from fuse.interpret import write_interpretation
    from fuse.results import write_results

    tr_table, tr_idx = train
    splits = [{"name": "cross-dataset", "n_train": int(len(tr_idx)), "n_test": int(len(predictions)),
               "train_items": sorted(set(tr_table.rows["item"].iloc[tr_idx])),
               "test_items": sorted(set(predictions["item"]))}]
    stores = {f"train.{r}": s for r, s in tr_table.sources.items()} | {
        f"test.{r}": s for r, s in te_table.sources.items()}
    title = f"{cfg.strategy}/{cfg.classifier} {metrics['dataset']} ({cfg.label_map})"
    out = write_results(cfg.out, config=config_to_dict(cfg), metrics=metrics, per_fold=per_fold,
                        per_subject=per_subject, predictions=predictions, splits=splits, stores=stores,
                        classes=list(te_target.classes),
                        extra=lambda d: write_interpretation(d, predictions=predictions, per_subject=per_subject,
                                                             classes=list(te_target.classes), title=title))
    log.info("results in %s", out)
    return out
