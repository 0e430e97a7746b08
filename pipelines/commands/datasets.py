"""``pipeline datasets list|stats``: what the readers see in a dataset root, without decoding any media."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

# tables are the command's output: wide enough to stay readable when piped
console = Console(width=None if sys.stdout.isatty() else 160)

log = logging.getLogger(__name__)

datasets_app = typer.Typer(help="Inspect raw datasets through their readers (no media decoded).",
                           no_args_is_help=True)


@datasets_app.command("list")
def datasets_list() -> None:
    """The registered dataset readers."""
    from extract.datasets import DATASETS, list_datasets

    table = Table(title="dataset readers", title_justify="left")
    table.add_column("name")
    table.add_column("modalities")
    for name in list_datasets():
        table.add_row(name, ", ".join(getattr(DATASETS.get(name), "modalities", ())))
    console.print(table)


@datasets_app.command("stats")
def datasets_stats(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Reader: deap, dfew, seedv, ravdess, fer2013, "
                                         "folder.")],
    root: Annotated[Path, typer.Option("--root", "-r", help="The dataset's root folder.")],
    option: Annotated[list[str] | None, typer.Option("--option", help="A reader option as KEY=VALUE, e.g. "
                                                     "frames=all (repeatable).")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the counts as one long CSV.")] = None,
) -> None:
    """Class counts per label (DFEW: per preset 7/5/4/2), over all items, per official fold (test and train
    sides) and per split; plus items, subjects and folds."""
    import pandas as pd

    from extract.datasets import DatasetError, create_dataset
    from extract.datasets.stats import class_counts, item_table, label_views
    from pipelines.config import ConfigError, parse_overrides
    from registry import UnknownNameError

    try:
        reader = create_dataset(dataset, root, **parse_overrides(option or []))
        table = item_table(reader.items())
    except (ConfigError, DatasetError, UnknownNameError, ValueError, TypeError) as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from exc
    if table.empty:
        log.error("%s: the %s reader lists no items", root, dataset)
        raise typer.Exit(2)
    folds = sorted(f for f in table["fold"].unique() if f >= 0)
    console.print(f"{dataset} {root}: {len(table)} items, {table['subject'].nunique()} subjects, "
                  f"{table['session'].nunique()} sessions, folds {', '.join(map(str, folds)) or 'none'}", markup=False)
    long = []
    for name, (codes, names) in label_views(reader, table).items():
        counts = class_counts(codes, names, table["fold"], table["split"])
        out = Table(title=name, title_justify="left")  # one row per group, one column per class: stays narrow
        out.add_column("items in")
        for cls in counts.index:
            out.add_column(str(cls), justify="right")
        for group in counts.columns:
            out.add_row(group, *(str(int(v)) for v in counts[group]))
        console.print(out)
        melted = counts.reset_index().melt(id_vars="class", var_name="group", value_name="n")
        long.append(melted.assign(dataset=dataset, label=name))
    if csv is not None and long:
        pd.concat(long)[["dataset", "label", "group", "class", "n"]].to_csv(csv, index=False)
        console.print(f"counts written to {csv}")
