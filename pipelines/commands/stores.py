"""``pipeline stores ls|info|verify|gc|compact``: list, inspect, check and clean embedding stores (thin over ``store``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands.help import examples

stores_app = typer.Typer(
    help="Embedding stores: list them, show one, verify structure and checksums, remove uncommitted leftovers.",
    no_args_is_help=True,
)


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # piped or under a test runner: do not squeeze tables into 80 columns
        console = Console(width=200)
    return console


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _open(path: Path):  # -> store.Store (imported lazily: the CLI starts fast)
    from store import StoreError, open_store

    try:
        return open_store(path)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@stores_app.command("ls", epilog=examples("pipeline stores ls cache", "pipeline stores ls cache/deap"))
def ls(
    directory: Annotated[Path, typer.Argument(help="Directory searched for stores (recursively).")] = Path("."),
) -> None:
    """List the stores under DIRECTORY: name, kind, dataset, items done/failed, rows, dim, size, fingerprint."""
    from store import StoreError, list_stores, open_store

    paths = list_stores(directory)
    console = _console()
    if not paths:
        console.print(f"no stores under {directory}")
        return
    table = Table(title=f"stores under {directory}")
    for col in ("store", "kind", "dataset", "backend", "done", "failed", "rows", "dim", "size", "fingerprint"):
        table.add_column(col, justify="right" if col in ("done", "failed", "rows", "dim", "size") else "left")
    for path in paths:
        name = str(path.relative_to(directory)) if path != Path(directory) else path.name
        try:
            sm = open_store(path).summary()
        except StoreError as exc:
            table.add_row(name, "[red]unreadable[/red]", str(exc)[:60], "", "", "", "", "", "", "")
            continue
        table.add_row(name, sm["kind"], sm["dataset"], sm["backend"], str(sm["items_done"]),
                      str(sm["items_failed"]), str(sm["rows"]), str(sm["dim"]), _size(sm["size_bytes"]),
                      sm["fingerprint"])
    console.print(table)


@stores_app.command("info", epilog=examples("pipeline stores info cache/deap/eeg-de-1s-1a2b3c4d.zarr --failures 50"))
def info(
    store_path: Annotated[Path, typer.Argument(metavar="STORE", help="The store directory.")],
    failures: Annotated[int, typer.Option("--failures", help="Show at most this many failed items.")] = 20,
) -> None:
    """Show a store: summary, manifest, per-subject counts, failed items with their errors."""
    store = _open(store_path)
    console = _console()
    summary = store.summary()
    table = Table(title=f"store {store.path}", show_header=False)
    for key, value in summary.items():
        table.add_row(key, _size(value) if key == "size_bytes" else str(value))
    console.print(table)
    console.print("[bold]manifest[/bold]")
    console.print_json(json.dumps(store.manifest.to_dict()))
    counts = store.subject_counts()
    subjects = Table(title="per subject")
    for col in counts.columns:
        subjects.add_column(col, justify="left" if col == "subject" else "right")
    for row in counts.itertuples(index=False):
        subjects.add_row(*(str(v) for v in row))
    console.print(subjects)
    failed = store.failures()
    if failed:
        ftable = Table(title=f"failed items ({len(failed)})")
        ftable.add_column("item")
        ftable.add_column("error")
        for key, error in list(failed.items())[:failures]:
            ftable.add_row(key, error.splitlines()[0] if error else "")
        console.print(ftable)
        if len(failed) > failures:
            console.print(f"... and {len(failed) - failures} more")
    dups = store.duplicates()
    if dups:
        console.print(f"[yellow]{len(dups)} item(s) committed twice; `pipeline stores verify` lists them[/yellow]")


@stores_app.command("verify", epilog=examples("pipeline stores verify cache/deap/eeg-de-1s-1a2b3c4d.zarr", "pipeline stores verify STORE --no-checksums --strict"))
def verify(
    store_path: Annotated[Path, typer.Argument(metavar="STORE", help="The store directory.")],
    no_checksums: Annotated[bool, typer.Option("--no-checksums", help="Check structure only (fast: reads no "
                                               "embeddings).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings (duplicate items) too.")] = False,
) -> None:
    """Check a store's manifest, segments (structure, row index, checksums) and records; exit 1 on problems."""
    from store import is_warning

    store = _open(store_path)
    problems = store.verify(checksums=not no_checksums)
    console = _console()
    errors = [p for p in problems if not is_warning(p)]
    for problem in problems:
        console.print(f"[yellow]{problem}[/yellow]" if is_warning(problem) else f"[red]error:[/red] {problem}",
                      markup=True, highlight=False)
    if errors or (strict and problems):
        console.print(f"{store.path}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
        raise typer.Exit(1)
    what = "structure" if no_checksums else "structure and checksums"
    console.print(f"{store.path}: ok ({what}; {store.n_items} items, {store.n_rows} rows"
                  + (f", {len(problems)} warning(s))" if problems else ")"))


@stores_app.command("gc", epilog=examples("pipeline stores gc cache --dry-run", "pipeline stores gc cache --min-age-s 0"))
def gc(
    directory: Annotated[Path, typer.Argument(help="A store, or a directory searched for stores.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    min_age_s: Annotated[float, typer.Option("--min-age-s", help="Uncommitted leftovers made on another host are "
                                             "removed once this old (those of dead processes on this host at "
                                             "once).")] = 3600.0,
) -> None:
    """Remove uncommitted segment leftovers, stale claims, superseded failure records and fully duplicated
    segments. Committed items are never touched."""
    from store import collect_garbage

    actions = collect_garbage(directory, dry_run=dry_run, min_age_s=min_age_s)
    console = _console()
    verb = "would remove" if dry_run else "removed"
    for action in actions:
        console.print(f"{verb} {action.path}  ({action.reason})", highlight=False)
    console.print(f"{verb} {len(actions)} path(s)" if actions else "nothing to remove")


@stores_app.command("compact")
def compact(
    directory: Annotated[Path, typer.Argument(help="A store, or a directory searched for stores.")],
) -> None:
    """Merge each store's committed segments into ONE standard hierarchy (zarr: the store directory is a Zarr v3
    group that xr.open_zarr / zarr.open_group / da.from_zarr open; hdf5: STORE/store.h5). Crash-safe; the store
    stays writable."""
    from store import StoreError, compact_store, list_stores

    console = _console()
    paths = list_stores(directory)
    if not paths:
        console.print(f"no stores under {directory}")
        return
    failed = 0
    for path in paths:
        try:
            r = compact_store(path)
        except StoreError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        if r.compacted:
            console.print(f"{path}: compacted {r.items} items, {r.rows} rows ({r.layout}) in {r.seconds:.2f} s, "
                          f"{r.mib_per_s:.1f} MiB/s; removed {r.removed_segments} segment(s)", highlight=False)
        else:
            console.print(f"{path}: already compacted ({r.items} items)", highlight=False)
    if failed:
        raise typer.Exit(1)
