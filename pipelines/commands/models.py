"""`pipeline models ls`: the registered backbones and face detectors, their output dims and whether their weights
are on this machine (so a run will not need the network)."""

from __future__ import annotations

import importlib
import json
import logging
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands.help import examples

log = logging.getLogger(__name__)

models_app = typer.Typer(help="Vision backbones and face detectors: what is registered, what is downloaded.", no_args_is_help=True)


def backbone_rows() -> list[dict[str, Any]]:
    from extract.backbones import backbone_info, list_backbones, weights_available

    rows = []
    for name in list_backbones():
        info = backbone_info(name)
        rows.append(
            {"kind": "backbone", "name": name, "model": info["model_id"], "dim": info["dim"],
             "weights": weights_available(name)}
        )
    return rows


def detector_rows() -> list[dict[str, Any]]:
    """The face detectors, when ``extract.face.detectors`` is part of this checkout; [] otherwise."""
    try:
        module = importlib.import_module("extract.face.detectors")
    except ImportError as err:
        if getattr(err, "name", None) not in {"extract.face", "extract.face.detectors"}:
            log.warning("face detectors cannot be listed: %s", err)
        return []
    registry = module.DETECTORS
    rows = []
    for name in module.list_detectors():
        info = registry.info(name)
        rows.append(
            {"kind": "detector", "name": name, "model": str(info.get("weights", "")), "dim": "",
             "weights": _detector_weights_present(module, name, info)}
        )
    return rows


def _detector_weights_present(module: Any, name: str, info: dict[str, Any]) -> bool:
    """The detectors module's own ``weights_available`` when it has one; else weights that ship with a package
    (``offline=True``) are present; else build the detector once on the CPU and see whether its weights load."""
    if callable(getattr(module, "weights_available", None)):
        return bool(module.weights_available(name))
    if info.get("offline"):
        return True
    try:
        module.create_detector(name, device="cpu")
    except FileNotFoundError:
        return False
    return True


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, str(value)) if isinstance(value, bool) else str(value)


@models_app.command("ls", epilog=examples("pipeline models ls", "pipeline models ls --json"))
def ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON instead of a table.")] = False,
) -> None:
    """List registered backbones (name, model id, dim, weights present) and face detectors."""
    rows = backbone_rows() + detector_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="models")
    for column in ("kind", "name", "model", "dim", "weights present"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["kind"], row["name"], row["model"], str(row["dim"]), _yes_no(row["weights"]))
    Console(width=160).print(table)
    typer.echo("Also accepted: hf:ORG/NAME[@revision] (hub id, cached or downloaded) and local:/path (save_pretrained folder).")
