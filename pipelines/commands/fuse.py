"""``pipeline fuse`` (stores -> models, predictions, metrics) and ``pipeline results show|compare``."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands.help import examples

log = logging.getLogger(__name__)
# tables are the command's output: stdout (logs go to stderr); wide enough to stay readable when piped
console = Console(width=None if sys.stdout.isatty() else 160)

INPUT = "Input"
MODEL = "Model"
EVAL = "Evaluation"
OUTPUT = "Output"


def fuse_command(
    cache: Annotated[Path | None, typer.Option("--cache", help="Folder whose stores are found by kind (one store "
                                               "per modality of one dataset). Required: --cache or "
                                               "--stores (here or in --config).",
                                               rich_help_panel=INPUT)] = None,
    stores: Annotated[list[Path] | None, typer.Option("--stores", help="A store to read (repeatable); instead of "
                                                      "--cache.", rich_help_panel=INPUT)] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Use this dataset's stores when the cache holds "
                                                "several.", rich_help_panel=INPUT)] = None,
    modalities: Annotated[str | None, typer.Option("--modalities", help="Comma-separated modalities to use, e.g. "
                                                   "face,audio or eeg,face,peripheral (default: every store "
                                                   "found).", rich_help_panel=INPUT)] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s", help="A single modality (eeg, face, eye, "
                                                 "audio, peripheral), early, late or transformer (default "
                                                 "early).", rich_help_panel=MODEL)] = None,
    classifier: Annotated[str | None, typer.Option("--classifier", help="logreg, mlp or transformer (default: "
                                                   "transformer for the transformer strategy, logreg otherwise).",
                                                   rich_help_panel=MODEL)] = None,
    pca: Annotated[int | None, typer.Option("--pca", help="PCA components after standardisation (0 = none; "
                                            "fitted on training folds).", rich_help_panel=MODEL)] = None,
    late_combine: Annotated[str | None, typer.Option("--late-combine", help="Late fusion: mean (fixed weights), "
                                                     "tuned (weights on an inner split) or stack.",
                                                     rich_help_panel=MODEL)] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="valence, arousal, dominance, liking "
                                               "(binarised) or emotion (class ids); default valence.",
                                               rich_help_panel=EVAL)] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Binarisation threshold of continuous "
                                                    "ratings (default 5).", rich_help_panel=EVAL)] = None,
    above: Annotated[bool, typer.Option("--above", help="High = rating > threshold (default: >=).",
                                        rich_help_panel=EVAL)] = False,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="loso, kfold, dfew (the store's "
                                                 "fold column), seedv-3fold, cross-session or fer2013 (default loso).", rich_help_panel=EVAL)] = None,
    k: Annotated[int | None, typer.Option("--k", help="kfold: folds per subject (default 5).",
                                          rich_help_panel=EVAL)] = None,
    granularity: Annotated[str | None, typer.Option("--granularity", "-g", help="window (one row per EEG window "
                                                    "or face window) or trial (one row per item).",
                                                    rich_help_panel=EVAL)] = None,
    window_s: Annotated[float | None, typer.Option("--window-s", help="Face-only runs: window length on the face "
                                                   "clock (default 1; 0 = one row per frame).",
                                                   rich_help_panel=EVAL)] = None,
    require_all: Annotated[bool, typer.Option("--require-all", "--require-both", help="Use only rows with every "
                                              "modality of the run, whatever the strategy (comparable row sets; "
                                              "--require-both is the old name).", rich_help_panel=EVAL)] = False,
    max_yaw: Annotated[float | None, typer.Option("--max-yaw", help="Face rows whose |head yaw| exceeds this "
                                                  "many degrees count as no-face rows (default: keep all).",
                                                  rich_help_panel=EVAL)] = None,
    max_pitch: Annotated[float | None, typer.Option("--max-pitch", help="The same for |head pitch| (degrees).",
                                                    rich_help_panel=EVAL)] = None,
    min_face_px: Annotated[float | None, typer.Option("--min-face-px", help="Face rows whose face is smaller "
                                                      "(sqrt of the box area, px) count as no-face rows.",
                                                      rich_help_panel=EVAL)] = None,
    min_sharpness: Annotated[float | None, typer.Option("--min-sharpness", help="Face rows whose crop is blurrier "
                                                        "(variance of the Laplacian, q_blur) count as no-face "
                                                        "rows.", rich_help_panel=EVAL)] = None,
    max_align_residual: Annotated[float | None, typer.Option("--max-align-residual", help="Face rows whose "
                                                             "alignment residual (crop px; ~4 frontal, >= 9 "
                                                             "profile or non-human) exceeds this count as no-face "
                                                             "rows.", rich_help_panel=EVAL)] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of splits and training (default 0).",
                                             rich_help_panel=EVAL)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory this command writes: the run's "
                                             "results directory (default results/<strategy>-<target>-<protocol>); "
                                             "an existing one is refused unless --overwrite.",
                                             rich_help_panel=OUTPUT)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing results directory at --out "
                                            "(without it, an existing one is refused before any work).",
                                            rich_help_panel=OUTPUT)] = False,
    temporal: Annotated[str | None, typer.Option("--temporal", help="Clip datasets (DFEW, RAVDESS): one prediction "
                                                 "per clip from its face frames: gru, transformer, or frames "
                                                 "(per-frame logreg, log-probabilities averaged per clip).",
                                                 rich_help_panel=MODEL)] = None,
    test_stores: Annotated[list[Path] | None, typer.Option("--test-stores", help="Cross-dataset: test on this "
                                                           "dataset's store (repeatable); train on all of "
                                                           "--stores/--cache.", rich_help_panel=EVAL)] = None,
    label_map: Annotated[str | None, typer.Option("--label-map", help="Cross-dataset: training -> test classes: "
                                                  "fer2013-ravdess, dfew7-2 or identity (same names).",
                                                  rich_help_panel=EVAL)] = None,
    track: Annotated[str | None, typer.Option("--track", help="Also log the run to mlflow (a local file store "
                                              "beside the results, offline) or wandb (offline mode); default none.",
                                              rich_help_panel=OUTPUT)] = None,
    attention_item: Annotated[list[str] | None, typer.Option("--attention-item", help="Transformer: draw the "
                                                             "cross-attention maps of this item (repeatable; default "
                                                             "two test items).", rich_help_panel=OUTPUT)] = None,
    no_save_final: Annotated[bool, typer.Option("--no-save-final", help="Do not train and save the final model "
                                                "on all rows.", rich_help_panel=OUTPUT)] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML/TOML file with FuseConfig fields (a "
                                                "results directory's config.yaml repeats that run).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any other field as KEY=VALUE, e.g. "
                                                   "train.epochs=20, transformer.context=16, "
                                                   "transformer.adversary_lambda=0.1 (repeatable).")] = None,
) -> None:
    """Train and evaluate a fusion model on cached stores (never raw data) and write a results directory: metrics
    with the majority-class baseline beside them, per-fold/per-subject tables, predictions, plots, the model."""
    inputs = ", ".join(str(s) for s in stores) if stores else cache or (f"the stores of {config}" if config else None)
    log.info("fuse: %s: reading the stores, training, evaluating; results follow", inputs or "(no inputs given)")
    from fuse.config import FuseConfig
    from fuse.errors import FuseInputError, MissingExtraError
    from fuse.run import run_fuse
    from pipelines.config import ConfigError, build_config, parse_overrides, read_config_file
    from store import StoreError
    from store.registry import UnknownNameError

    overrides: dict[str, Any] = {
        "cache": str(cache) if cache else None,
        "stores": [str(s) for s in stores] if stores else None,
        "dataset": dataset,
        "modalities": [m.strip() for m in modalities.split(",") if m.strip()] if modalities else None,
        "strategy": strategy,
        "classifier": classifier,
        "pca_components": pca,
        "late": {"combine": late_combine} if late_combine else None,
        "target": target,
        "threshold": threshold,
        "threshold_side": ">" if above else None,
        "protocol": protocol,
        "k": k,
        "granularity": granularity,
        "window_s": window_s,
        "require_all": require_all or None,
        "max_yaw": max_yaw,
        "max_pitch": max_pitch,
        "min_face_px": min_face_px,
        "min_sharpness": min_sharpness,
        "max_align_residual": max_align_residual,
        "seed": seed,
        "out": str(out) if out else None,
        "save_final": False if no_save_final else None,
        "track": track,
        "temporal": temporal,
        "test_stores": [str(s) for s in test_stores] if test_stores else None,
        "label_map": label_map,
        "attention_items": list(attention_item) if attention_item else None,
    }
    overrides = {key: v for key, v in overrides.items() if v is not None}
    # bad input only (FuseDataError is a FuseInputError); any other exception is a bug and keeps its traceback
    errors = (ConfigError, FuseInputError, MissingExtraError, UnknownNameError, FileNotFoundError, FileExistsError,
              StoreError)
    try:
        file_layer = read_config_file(config) if config else None
        if stores or cache:  # explicit inputs replace the input fields of a config file, recorded stores included
            if file_layer and file_layer.get("expect_stores"):
                log.info("inputs given explicitly: the stores recorded in %s are not checked", config)
            file_layer = {key: v for key, v in (file_layer or {}).items()
                          if key not in ("stores", "cache", "expect_stores")}
        cfg = build_config(FuseConfig, file_layer, parse_overrides(set_ or []), overrides,
                           source=str(config) if config else "options")
        result = run_fuse(cfg, overwrite=overwrite)
    except errors as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from exc
    print_summary(result.metrics, result.per_fold, title=str(result.out))


results_app = typer.Typer(help="Inspect results directories written by `pipeline fuse`.", no_args_is_help=True)


def _pct(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{100 * v:.1f}"


def _delta(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    colour = "green" if value > 0 else ("red" if value < 0 else "white")
    return f"[{colour}]{100 * value:+.1f}[/{colour}]"


def print_summary(metrics: dict[str, Any], per_fold: Any, title: str = "", folds: bool = True) -> None:
    """Metrics vs the majority baseline, then (optionally) one row per fold."""
    target = metrics.get("target", {})
    head = (f"{metrics['strategy']}/{metrics['classifier']} · target {target.get('name')} ({target.get('rule')}) · "
            f"{metrics['protocol']} ({metrics['n_folds']} folds) · {metrics['granularity']} rows "
            f"{metrics['rows']['used']}/{metrics['rows']['total']}")
    table = Table(title=f"{title}\n{head}" if title else head, title_justify="left")
    for col in ("metric (%)", "fold mean", "± std", "pooled", "baseline", "Δ vs baseline"):
        table.add_column(col, justify="right" if col != "metric (%)" else "left")
    names = {"accuracy": "accuracy (WAR)", "macro_f1": "macro-F1", "uar": "UAR"}
    for metric, label in names.items():
        mean = metrics["fold_mean"][metric]
        base = metrics["baseline"]["fold_mean"][metric]
        table.add_row(label, _pct(mean), _pct(metrics["fold_std"][metric]), _pct(metrics["pooled"][metric]),
                      _pct(base), _delta(mean - base))
    if "per_item" in metrics:
        item = metrics["per_item"]
        table.add_row("per item: accuracy", _pct(item["model"]["accuracy"]), "", "",
                      _pct(item["baseline"]["accuracy"]),
                      _delta(item["model"]["accuracy"] - item["baseline"]["accuracy"]))
        table.add_row("per item: UAR", _pct(item["model"]["uar"]), "", "", _pct(item["baseline"]["uar"]),
                      _delta(item["model"]["uar"] - item["baseline"]["uar"]))
    console.print(table)
    if folds and per_fold is not None and len(per_fold):
        ft = Table(title="per fold", title_justify="left")
        for col in ("fold", "n test", "acc", "F1", "UAR", "baseline acc", "Δ acc"):
            ft.add_column(col, justify="left" if col == "fold" else "right")
        for rec in per_fold.to_dict("records"):
            ft.add_row(str(rec["fold"]), str(rec["n_test"]), _pct(rec["accuracy"]), _pct(rec["macro_f1"]),
                       _pct(rec["uar"]), _pct(rec["baseline_accuracy"]), _delta(rec["delta_accuracy"]))
        console.print(ft)


@results_app.command("show", epilog=examples("pipeline results show results/late", "pipeline results show results/late --no-folds"))
def results_show(
    directory: Annotated[Path, typer.Argument(help="A results directory written by `pipeline fuse`.")],
    no_folds: Annotated[bool, typer.Option("--no-folds", help="Only the summary, not the per-fold table.")] = False,
) -> None:
    """Metrics of one run against the majority-class baseline, and per fold."""
    from fuse.results import read_results

    try:
        res = read_results(directory)
    except FileNotFoundError as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from exc
    print_summary(res, res["per_fold"], title=str(directory), folds=not no_folds)


@results_app.command("compare", epilog=examples(
    "pipeline results compare results/*", "pipeline results compare results/late results/eeg --sort acc",
    "pipeline results compare results/* --format md > runs.md", "pipeline results compare results/* --format csv"))
def results_compare(
    directories: Annotated[list[Path], typer.Argument(help="Results directories to compare.")],
    sort: Annotated[str, typer.Option("--sort", help="Sort by: name, acc, f1, uar, delta or rows.")] = "name",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (default, for reading), csv, md (Markdown) or "
                                     "json (csv/json: raw fractions, every field).")] = "table",
) -> None:
    """One row per run: the features it actually used, strategy, classifier, target, protocol, rows used/total,
    accuracy, F1, UAR, baseline accuracy, delta."""
    from fuse.results import COMPARE_FORMATS, compare_rows, format_rows, sort_rows

    if fmt not in COMPARE_FORMATS:
        log.error("--format must be one of %s; got %r", ", ".join(COMPARE_FORMATS), fmt)
        raise typer.Exit(2)
    try:
        rows = sort_rows(compare_rows(directories), sort)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from exc
    if fmt != "table":
        sys.stdout.write(format_rows(rows, fmt))
        return
    table = Table(title="runs (fold means, %)", title_justify="left")
    numeric = ("rows", "acc", "F1", "UAR", "baseline acc", "Δ acc")
    for col in ("run", "features", "strategy", "classifier", "target", "protocol", "granularity", *numeric):
        table.add_column(col, justify="right" if col in numeric else "left")
    for r in rows:
        table.add_row(r["run"], r["features"], r["strategy"], r["classifier"], r["target"], r["protocol"],
                      r["granularity"], f"{r['rows']}/{r['rows_total']}", _pct(r["acc"]), _pct(r["f1"]),
                      _pct(r["uar"]), _pct(r["baseline_acc"]), _delta(r["delta_acc"]))
    console.print(table)
