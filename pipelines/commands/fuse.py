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

from fuse.config import CLASSIFIER_NAMES, PROTOCOL_NAMES, SINGLE_MODALITY, STRATEGY_NAMES
from pipelines.commands.help import examples
from pipelines.commands.options import (
    Opt,
    as_csv,
    as_list,
    as_str,
    as_strs,
    build_overrides,
    given,
    negated,
    with_options,
)

log = logging.getLogger(__name__)
# tables are the command's output: stdout (logs go to stderr); wide enough to stay readable when piped
console = Console(width=None if sys.stdout.isatty() else 160)

INPUT = "Input"
MODEL = "Model"
EVAL = "Evaluation"
OUTPUT = "Output"


def _above(value: bool) -> str | None:
    """``--above``: the high class is rating > threshold (else the config's side stands)."""
    return ">" if value else None


# every option once: its typer declaration and the FuseConfig field it sets (cli_only: used by the command itself)
FUSE_OPTIONS = [
    Opt("cache", Path | None, typer.Option("--cache", rich_help_panel=INPUT,
        help="Folder whose stores are found by kind (one store "
        "per modality of one dataset). Required: --cache or "
        "--stores (here or in --config)."), convert=as_str),
    Opt("stores", list[Path] | None, typer.Option("--stores", rich_help_panel=INPUT,
        help="A store to read (repeatable); instead of "
        "--cache."), convert=as_strs),
    Opt("dataset", str | None, typer.Option("--dataset", rich_help_panel=INPUT,
        help="Use this dataset's stores when the cache holds "
        "several.")),
    Opt("modalities", str | None, typer.Option("--modalities", rich_help_panel=INPUT,
        help="Comma-separated modalities to use, e.g. "
        "face,audio or eeg,face,peripheral (default: every store "
        "found)."), convert=as_csv),
    Opt("strategy", str | None, typer.Option("--strategy", "-s", rich_help_panel=MODEL,
        help=f"A single modality ({', '.join(SINGLE_MODALITY)}) or a fusion "
        f"({', '.join(s for s in STRATEGY_NAMES if s not in SINGLE_MODALITY)}"
        "); default early.")),
    Opt("classifier", str | None, typer.Option("--classifier", rich_help_panel=MODEL,
        help=f"{', '.join(CLASSIFIER_NAMES)} (default: "
        "transformer for the transformer strategy, logreg otherwise).")),
    Opt("pca", int | None, typer.Option("--pca", rich_help_panel=MODEL,
        help="PCA components after standardisation (0 = none; "
        "fitted on training folds)."), to="pca_components"),
    Opt("late_combine", str | None, typer.Option("--late-combine", rich_help_panel=MODEL,
        help="Late fusion: mean (fixed weights), "
        "tuned (weights on an inner split) or stack."), to="late.combine", convert=given),
    Opt("target", str | None, typer.Option("--target", "-t", rich_help_panel=EVAL,
        help="valence, arousal, dominance, liking "
        "(binarised) or emotion (class ids); default valence.")),
    Opt("threshold", float | None, typer.Option("--threshold", rich_help_panel=EVAL,
        help="Binarisation threshold of continuous "
        "ratings (default 5).")),
    Opt("above", bool, typer.Option("--above", rich_help_panel=EVAL,
        help="High = rating > threshold (default: >=)."), False, to="threshold_side", convert=_above),
    Opt("protocol", str | None, typer.Option("--protocol", "-p", rich_help_panel=EVAL,
        help=f"{', '.join(PROTOCOL_NAMES)} (default "
        "loso; dfew: the store's fold column).")),
    Opt("k", int | None, typer.Option("--k", rich_help_panel=EVAL,
        help="kfold: folds per subject (default 5).")),
    Opt("granularity", str | None, typer.Option("--granularity", "-g", rich_help_panel=EVAL,
        help="window (one row per EEG window "
        "or face window) or trial (one row per item).")),
    Opt("window_s", float | None, typer.Option("--window-s", rich_help_panel=EVAL,
        help="Face-only runs: window length on the face "
        "clock (default 1; 0 = one row per frame).")),
    Opt("require_all", bool, typer.Option("--require-all", "--require-both", rich_help_panel=EVAL,
        help="Use only rows with every "
        "modality of the run, whatever the strategy (comparable row sets; "
        "--require-both is the old name)."), False, convert=given),
    Opt("max_yaw", float | None, typer.Option("--max-yaw", rich_help_panel=EVAL,
        help="Face rows whose |head yaw| exceeds this "
        "many degrees count as no-face rows (default: keep all).")),
    Opt("max_pitch", float | None, typer.Option("--max-pitch", rich_help_panel=EVAL,
        help="The same for |head pitch| (degrees).")),
    Opt("min_face_px", float | None, typer.Option("--min-face-px", rich_help_panel=EVAL,
        help="Face rows whose face is smaller "
        "(sqrt of the box area, px) count as no-face rows.")),
    Opt("min_sharpness", float | None, typer.Option("--min-sharpness", rich_help_panel=EVAL,
        help="Face rows whose crop is blurrier "
        "(variance of the Laplacian, q_blur) count as no-face "
        "rows.")),
    Opt("max_align_residual", float | None, typer.Option("--max-align-residual", rich_help_panel=EVAL,
        help="Face rows whose "
        "alignment residual (crop px; ~4 frontal, >= 9 "
        "profile or non-human) exceeds this count as no-face "
        "rows.")),
    Opt("seed", int | None, typer.Option("--seed", rich_help_panel=EVAL,
        help="Seed of splits and training (default 0).")),
    Opt("out", Path | None, typer.Option("--out", "-o", rich_help_panel=OUTPUT,
        help="Directory this command writes: the run's "
        "results directory (default results/<strategy>-<target>-<protocol>); "
        "an existing one is refused unless --overwrite."), convert=as_str),
    Opt("overwrite", bool, typer.Option("--overwrite", rich_help_panel=OUTPUT,
        help="Replace an existing results directory at --out "
        "(without it, an existing one is refused before any work)."), False, cli_only=True),
    Opt("temporal", str | None, typer.Option("--temporal", rich_help_panel=MODEL,
        help="Clip datasets (DFEW, RAVDESS): one prediction "
        "per clip from its face frames: gru, transformer, or frames "
        "(per-frame logreg, log-probabilities averaged per clip).")),
    Opt("test_stores", list[Path] | None, typer.Option("--test-stores", rich_help_panel=EVAL,
        help="Cross-dataset: test on this "
        "dataset's store (repeatable); train on all of "
        "--stores/--cache."), convert=as_strs),
    Opt("label_map", str | None, typer.Option("--label-map", rich_help_panel=EVAL,
        help="Cross-dataset: training -> test classes: "
        "fer2013-ravdess, dfew7-2 or identity (same names).")),
    Opt("track", str | None, typer.Option("--track", rich_help_panel=OUTPUT,
        help="Also log the run to mlflow (a local file store "
        "beside the results, offline) or wandb (offline mode); default none.")),
    Opt("attention_item", list[str] | None, typer.Option("--attention-item", rich_help_panel=OUTPUT,
        help="Transformer: draw the "
        "cross-attention maps of this item (repeatable; default "
        "two test items)."), to="attention_items", convert=as_list),
    Opt("no_save_final", bool, typer.Option("--no-save-final", rich_help_panel=OUTPUT,
        help="Do not train and save the final model "
        "on all rows."), False, to="save_final", convert=negated),
    Opt("config", Path | None, typer.Option("--config", "-c",
        help="YAML/TOML file with FuseConfig fields (a "
        "results directory's config.yaml repeats that run)."), cli_only=True),
    Opt("set_", list[str] | None, typer.Option("--set",
        help="Any other field as KEY=VALUE, e.g. "
        "train.epochs=20, transformer.context=16, "
        "transformer.adversary_lambda=0.1 (repeatable)."), cli_only=True),
]


@with_options(FUSE_OPTIONS)
def fuse_command(**opts: Any) -> None:
    """Train and evaluate a fusion model on cached stores (never raw data) and write a results directory: metrics
    with the majority-class baseline beside them, per-fold/per-subject tables, predictions, plots, the model."""
    stores, cache, config = opts["stores"], opts["cache"], opts["config"]
    inputs = ", ".join(str(s) for s in stores) if stores else cache or (f"the stores of {config}" if config else None)
    log.info("fuse: %s: reading the stores, training, evaluating; results follow", inputs or "(no inputs given)")
    from fuse.errors import FuseInputError, MissingExtraError
    from fuse.run import run_fuse
    from pipelines.config import ConfigError
    from registry import UnknownNameError
    from store import StoreError

    # bad input only (FuseDataError is a FuseInputError); any other exception is a bug and keeps its traceback
    errors = (ConfigError, FuseInputError, MissingExtraError, UnknownNameError, FileNotFoundError, FileExistsError,
              StoreError)
    try:
        result = run_fuse(_resolve_config(opts), overwrite=opts["overwrite"])
    except errors as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from exc
    print_summary(result.metrics, result.per_fold, title=str(result.out))


def _resolve_config(opts: dict[str, Any]) -> Any:
    """A FuseConfig: defaults < --config file < --set < explicit options (explicit inputs replace the file's)."""
    from fuse.config import FuseConfig
    from pipelines.config import build_config, parse_overrides, read_config_file

    config = opts["config"]
    file_layer = read_config_file(config) if config else None
    # explicit inputs replace the input fields of a config file, recorded stores included
    if opts["stores"] or opts["cache"]:
        if file_layer and file_layer.get("expect_stores"):
            log.info("inputs given explicitly: the stores recorded in %s are not checked", config)
        file_layer = {key: v for key, v in (file_layer or {}).items()
                      if key not in ("stores", "cache", "expect_stores")}
    return build_config(FuseConfig, file_layer, parse_overrides(opts["set_"] or []),
                        build_overrides(FUSE_OPTIONS, opts), source=str(config) if config else "options")


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
    for role, branch in metrics.get("per_modality", {}).items():  # late fusion: each branch alone
        mean = branch["fold_mean"]["accuracy"]
        table.add_row(f"{role} alone: accuracy", _pct(mean), _pct(branch["fold_std"]["accuracy"]),
                      _pct(branch["pooled"]["accuracy"]), "", _delta(mean - metrics["baseline"]["fold_mean"]["accuracy"]))
    console.print(table)
    _print_spread(metrics)
    if folds and per_fold is not None and len(per_fold):
        ft = Table(title="per fold", title_justify="left")
        for col in ("fold", "n test", "acc", "F1", "UAR", "baseline acc", "Δ acc"):
            ft.add_column(col, justify="left" if col == "fold" else "right")
        for rec in per_fold.to_dict("records"):
            ft.add_row(str(rec["fold"]), str(rec["n_test"]), _pct(rec["accuracy"]), _pct(rec["macro_f1"]),
                       _pct(rec["uar"]), _pct(rec["baseline_accuracy"]), _delta(rec["delta_accuracy"]))
        console.print(ft)


def _print_spread(metrics: dict[str, Any]) -> None:
    """Mean ± std over subjects (as SEED-V papers report) and the folds whose test or training side has one class."""
    spread = metrics.get("across_subjects") or {}
    if "accuracy_std" in spread:
        console.print(f"across {spread['n_subjects']} subjects: accuracy {_pct(spread['accuracy_mean'])} ± "
                      f"{_pct(spread['accuracy_std'])} % (baseline {_pct(spread['baseline_accuracy_mean'])} ± "
                      f"{_pct(spread['baseline_accuracy_std'])} %)")
    single = metrics.get("single_class_folds") or []
    if single:
        shown = ", ".join(map(str, single[:6])) + (f" ... ({len(single)} in all)" if len(single) > 6 else "")
        console.print(f"[yellow]warning:[/yellow] {len(single)} fold(s) with a single class on the test or training "
                      f"side (F1/UAR of those folds say little): {shown}")


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
    from fuse.errors import FuseInputError
    from fuse.results import COMPARE_FORMATS, compare_rows, format_rows, sort_rows

    if fmt not in COMPARE_FORMATS:
        log.error("--format must be one of %s; got %r", ", ".join(COMPARE_FORMATS), fmt)
        raise typer.Exit(2)
    try:
        rows = sort_rows(compare_rows(directories), sort)
    except (FileNotFoundError, FuseInputError) as exc:  # bad input; a bug keeps its traceback
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
