"""The ``pipeline`` command line: a thin typer layer; the work lives in the packages."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pipelines import __version__
from pipelines.commands.help import examples
from pipelines.logs import setup_logging

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


@app.command(epilog=examples("pipeline info", "pipeline info --cuda", "pipeline info --no-hub-check | grep torch"))
def info(
    no_hub_check: Annotated[bool, typer.Option("--no-hub-check", help="Do not probe the Hugging Face hub.")] = False,
    cuda: Annotated[bool, typer.Option("--cuda", help="Also ask torch which GPUs it sees (imports torch: "
                                       "seconds to tens of seconds on a busy machine).")] = False,
) -> None:
    """Report the environment on stdout: python, torch and its CUDA build, GPUs, transformers and its cache, hub
    access, storage libs."""
    from pipelines.info import environment_report, format_report

    sys.stdout.write(format_report(environment_report(check_hub=not no_hub_check, check_cuda=cuda)))


# Command groups; each lives in pipelines/commands/ and imports its heavy dependencies lazily.
from pipelines.commands.datasets import datasets_app  # noqa: E402
from pipelines.commands.demo_data import demo_data  # noqa: E402
from pipelines.commands.extract import extract_command  # noqa: E402
from pipelines.commands.finetune import finetune_command  # noqa: E402
from pipelines.commands.fuse import fuse_command, results_app  # noqa: E402
from pipelines.commands.models import models_app  # noqa: E402
from pipelines.commands.predict import predict_command  # noqa: E402
from pipelines.commands.stores import stores_app  # noqa: E402

# in the order of the workflow: data, stage 1, stores and models, stage 2, results, inference
app.command("demo-data", epilog=examples(
    "pipeline demo-data deap --out demo-data/deap",
    "pipeline demo-data deap --out demo-data/deap --subjects 6 --trials 8 --seconds 6 --seed 0",
    "pipeline demo-data fer2013 --out demo-data/fer2013 --trials 200"))(demo_data)
app.add_typer(datasets_app, name="datasets")
app.command("extract", epilog=examples(
    "pipeline extract --dataset deap --root /data/DEAP --gpu 0",
    "pipeline extract --dataset deap --root /data/DEAP --modality eeg --eeg-window 2 --dry-run",
    "pipeline extract --dataset dfew --root /data/DFEW --set reader_options.label_preset=7 --workers 2",
    "pipeline extract --dataset fer2013 --root /data/FER2013 --detector none --out /scratch/cache",
    "pipeline extract --config extract.yaml --set face_options.min_score=0.95"))(extract_command)
app.add_typer(stores_app, name="stores")
app.add_typer(models_app, name="models")
app.command("fuse", epilog=examples(
    "pipeline fuse --cache cache/deap --strategy late --target valence --protocol loso --out results/late",
    "pipeline fuse --stores cache/deap/eeg-de-1s-1a2b3c4d.zarr --strategy eeg --protocol kfold --k 5",
    "pipeline fuse --cache cache/deap --strategy transformer --set train.epochs=20 --out results/tf",
    "pipeline fuse --config results/late/config.yaml --out results/late-again   (a replay: same stores, checked)",
    "pipeline fuse --cache cache/deap --strategy early --out results/early --overwrite"))(fuse_command)
app.command("finetune", epilog=examples(
    "pipeline finetune --store cache/dfew/face_crops-1a2b.zarr --backbone resnet101 --protocol dfew "
    "--frames-per-item 16 --out results/ft-dfew",
    "pipeline finetune --store cache/fer2013/face_crops-3c4d.zarr --backbone resnet50 --protocol fer2013 "
    "--frozen-layers 8 --loss focal --gamma 2 --weighted-sampler --mixup 0.2 --out results/ft-fer",
    "pipeline finetune --store cache/deap/face_crops-5e6f.zarr --backbone clip-vit-l14 --frozen-layers 8 "
    "--lr-backbone 1e-5 --lr-head 1e-3 --target valence --protocol loso"))(finetune_command)
app.add_typer(results_app, name="results")
app.command("predict", epilog=examples(
    "pipeline predict --video clip.mp4 --model results/face-valence --out predictions/clip",
    "pipeline predict --video clip.mp4 --model fer2013 --fps 7.5 --debug-crops crops/clip",
    "pipeline predict --images photos/ --model fer2013 --out predictions/photos   (happy/, sad/ ...: accuracy)",
    "pipeline predict --dataset ravdess --root /data/RAVDESS --model fer2013 --out predictions/ravdess"))(predict_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; ``argv`` lets tests drive the whole CLI in-process."""
    app(args=argv, prog_name="pipeline")


if __name__ == "__main__":  # pragma: no cover
    main()
