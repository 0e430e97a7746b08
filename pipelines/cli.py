"""The ``pipeline`` command line: a thin typer layer; the work lives in the packages."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pipelines import __version__
from pipelines.logs import console, setup_logging

app = typer.Typer(
    name="pipeline",
    help="Multimodal emotion recognition: extract features once into stores, fuse them many times.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pipeline {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    setup_logging(verbose=verbose, quiet=quiet)


@app.command()
def info(
    no_hub_check: Annotated[bool, typer.Option("--no-hub-check", help="Do not probe the Hugging Face hub.")] = False,
) -> None:
    """Report the environment: python, torch, CUDA and GPUs, transformers and its cache, hub access, storage libs."""
    from pipelines.info import environment_report

    report = environment_report(check_hub=not no_hub_check)
    table = Table(title="pipeline environment", show_header=False)
    for key, value in report.items():
        table.add_row(key, "\n".join(value) if isinstance(value, list) else str(value))
    console.print(table)


# Command groups; each lives in pipelines/commands/ and imports its heavy dependencies lazily.
from pipelines.commands.datasets import datasets_app  # noqa: E402
from pipelines.commands.demo_data import demo_data  # noqa: E402
from pipelines.commands.extract import extract_command  # noqa: E402
from pipelines.commands.fuse import fuse_command, results_app  # noqa: E402
from pipelines.commands.models import models_app  # noqa: E402
from pipelines.commands.predict import predict_command  # noqa: E402
from pipelines.commands.stores import stores_app  # noqa: E402

# in the order of the workflow: data, stage 1, stores and models, stage 2, results, inference
app.command("demo-data")(demo_data)
app.add_typer(datasets_app, name="datasets")
app.command("extract")(extract_command)
app.add_typer(stores_app, name="stores")
app.add_typer(models_app, name="models")
app.command("fuse")(fuse_command)
app.add_typer(results_app, name="results")
app.command("predict")(predict_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; ``argv`` lets tests drive the whole CLI in-process."""
    app(args=argv, prog_name="pipeline")


if __name__ == "__main__":  # pragma: no cover
    main()
