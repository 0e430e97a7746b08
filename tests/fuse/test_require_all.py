"""`pipeline fuse --require-all` (old name `--require-both`) for every strategy: the same rows, those with every
modality, whatever the strategy, so single-modality and fusion runs are compared on one row set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fuse.synthetic import Planted, planted_items
from pipelines.cli import app

runner = CliRunner()
PLANTED = Planted(n_subjects=4, n_trials=4, n_windows=4)
STRATEGIES = ("eeg", "face", "early", "late", "transformer")


@pytest.fixture(scope="module")
def gappy_stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Planted EEG and face stores in which trial 1 of every subject has no video (no face rows at all)."""
    from store import create_store
    from store.schema import ItemRows, Manifest

    directory = tmp_path_factory.mktemp("gappy")
    paths = []
    for kind, items, dim in zip(("eeg", "face"), planted_items(PLANTED), (PLANTED.eeg_dim, PLANTED.face_dim),
                                strict=True):
        manifest = Manifest(kind=kind, dataset="deap", extractor=f"synthetic/{kind}", extractor_version="1", dim=dim,
                            dtype="float32", config={"planted": True}, input_fingerprint="planted-gappy")
        path = directory / f"deap-{kind}"
        writer = create_store(path, manifest)
        for it in items:
            rows = it["rows"]
            if kind == "face" and rows["trial"].iloc[0] == "01":
                continue
            writer.write_item(ItemRows(
                key=rows["item"].iloc[0], embeddings=it["embeddings"], subject=rows["subject"].iloc[0],
                session=int(rows["session"].iloc[0]), trial=rows["trial"].iloc[0],
                t_start_s=rows["t_start_s"].to_numpy(), t_end_s=rows["t_end_s"].to_numpy(),
                labels={"valence": float(rows["label_valence"].iloc[0])}, quality=it["quality"]))
        writer.close()
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize(("strategy", "flag"), [*((s, "--require-all") for s in STRATEGIES),
                                              ("eeg", "--require-both")])
def test_every_strategy_accepts_require_all_and_uses_the_rows_with_every_modality(
        gappy_stores: tuple[Path, Path], tmp_path: Path, strategy: str, flag: str) -> None:
    eeg, face = gappy_stores
    args = ["fuse", "--stores", str(eeg), "--stores", str(face), "--strategy", strategy, flag, "--protocol", "kfold",
            "--k", "2", "--no-save-final", "--out", str(tmp_path / "run")]
    if strategy == "transformer":
        args += ["--set", "train.epochs=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"]
    assert rows["used"] == PLANTED.n_subjects * (PLANTED.n_trials - 1) * PLANTED.n_windows  # trial 1 has no face
