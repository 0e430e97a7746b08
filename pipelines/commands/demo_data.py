"""``pipeline demo-data DATASET --out DIR``: write a small synthetic dataset in the exact real layout."""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Annotated

import typer

from pipelines.logs import console


class DemoDataset(str, enum.Enum):
    deap = "deap"
    dfew = "dfew"
    seedv = "seedv"
    ravdess = "ravdess"
    fer2013 = "fer2013"


def _frame_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT such as 360x288, got {text!r}") from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise typer.BadParameter(f"frame size {text} must be even and at least 16x16")
    return width, height


def demo_data(
    dataset: Annotated[DemoDataset, typer.Argument(help="Which dataset layout to write.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory this command writes: the dataset root "
                                                     "(then `pipeline extract --root` it).")],
    subjects: Annotated[
        int | None, typer.Option(help="deap: participants (4); seedv: subjects (3); ravdess: actors (4).")
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(help="deap: trials per participant (6); seedv: trials per session (15); ravdess: clips per "
                     "actor (8); dfew: clips (35); fer2013: images (70)."),
    ] = None,
    seconds: Annotated[
        float | None, typer.Option(help="deap: stimulus seconds per trial (10); ravdess: clip seconds (1); "
                                   "dfew: seconds of the full clip at 25 fps (1).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same files.")] = 0,
    frame_size: Annotated[
        str | None, typer.Option(help="deap/ravdess video size WIDTHxHEIGHT (deap default 720x576).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="deap: processes encoding videos; more than 1 pays off only for large fixtures.")
    ] = 1,
    audio: Annotated[
        bool, typer.Option("--audio", help="ravdess: also write the audio-visual (01) clips, whose voice track "
                           "carries a planted per-emotion pitch (for `--modality all` and face + audio fusion).")
    ] = False,
    noise: Annotated[
        float | None, typer.Option(help="ravdess: std (in classes) of independent per-clip noise on the face "
                                   "style and on the voice pitch, so each modality alone errs (default 0).")
    ] = None,
    pairs: Annotated[
        bool, typer.Option("--pairs", help="ravdess: face and voice each show one signal per pair of emotions "
                           "(different pairs), so only fusing both names the emotion.")
    ] = False,
) -> None:
    """Write a small dataset in DATASET's real layout (labels carry a learnable signal), then list it."""
    from extract.fixtures import write_fixture

    name = dataset.value
    extra = _fixture_options(name, frame_size, workers, {"audio_visual": audio, "noise": noise, "pairs": pairs})
    started = time.perf_counter()
    try:
        root = write_fixture(name, out, seed=seed, subjects=subjects, trials=trials, seconds=seconds, **extra)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _report(name, root, time.perf_counter() - started)


def _fixture_options(name: str, frame_size: str | None, workers: int,
                     ravdess_only: dict[str, object]) -> dict[str, object]:
    """The writer options beyond the common ones; an option that does not apply to ``name`` is a usage error."""
    extra: dict[str, object] = {}
    size = _frame_size(frame_size)
    if size is not None:
        if name not in ("deap", "ravdess"):
            raise typer.BadParameter(f"--frame-size applies to deap and ravdess, not {name}")
        extra["frame_size"] = size
    if name == "deap":
        extra["workers"] = workers
    given = [opt for opt, value in ravdess_only.items() if value]
    if given and name != "ravdess":
        raise typer.BadParameter(f"--audio, --noise and --pairs apply to ravdess, not {name}")
    if given:
        extra |= {opt: value for opt, value in ravdess_only.items() if value is not None}
    return extra


def _report(name: str, root: Path, elapsed: float) -> None:
    """List what was written and what the dataset's reader sees in it."""
    from extract.datasets import create_dataset

    reader = create_dataset(name, root=root)
    items = reader.items()
    files = [p for p in root.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    console.print(
        f"{name}: wrote {len(files)} files ({size_mb:.1f} MB) in {elapsed:.1f} s to {root}; "
        f"the reader lists {len(items)} items"
    )
    missing = getattr(reader, "missing_video", None)
    if callable(missing) and missing():
        console.print(f"EEG-only items (no face video, as in the real set): {', '.join(missing())}")
