"""`pipeline datasets stats`: class counts per preset, fold and split, checked against the readers' items."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from extract.datasets import create_dataset
from extract.datasets.dfew import map_label
from extract.datasets.stats import class_counts, item_table, label_views
from extract.fixtures import write_fixture
from pipelines.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("datasets")
    return {name: write_fixture(name, base / name) for name in ("dfew", "seedv", "fer2013")}


def test_dfew_counts_every_preset_per_fold(roots: dict[str, Path], tmp_path: Path) -> None:
    csv = tmp_path / "counts.csv"
    result = runner.invoke(app, ["datasets", "stats", "--dataset", "dfew", "--root", str(roots["dfew"]),
                                 "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    for preset in (7, 5, 4, 2):
        assert f"emotion (preset {preset})" in result.output
    counts = pd.read_csv(csv)
    items = create_dataset("dfew", roots["dfew"]).items()
    for preset in (7, 2):
        view = counts[(counts["label"] == f"emotion (preset {preset})") & (counts["class"] != "total")]
        for k in (1, 3):
            expected = pd.Series([map_label(int(it.labels["emotion7"]), preset) for it in items if it.fold == k])
            got = view[view["group"] == f"fold{k} test"]["n"].to_numpy()
            assert got.tolist() == expected.value_counts().reindex(range(len(got)), fill_value=0).tolist()
            train = view[view["group"] == f"fold{k} train"]["n"].sum()
            assert train == sum(it.fold != k for it in items)
    totals = counts[(counts["class"] == "total") & (counts["group"] == "all")]["n"]
    assert (totals == len(items)).all()


def test_every_reader_gets_counts_per_split_or_fold(roots: dict[str, Path]) -> None:
    fer = create_dataset("fer2013", roots["fer2013"])
    table = item_table(fer.items())
    (name,) = label_views(fer, table)
    codes, names = label_views(fer, table)[name]
    counts = class_counts(codes, names, table["fold"], table["split"])
    assert {"split train", "split val", "split test"} <= set(counts.columns)
    assert not any(c.startswith("fold") for c in counts.columns)  # FER2013's folds are its splits
    assert counts.loc["total", "all"] == len(table) == counts.loc["total", ["split train", "split val",
                                                                            "split test"]].sum()
    seedv = create_dataset("seedv", roots["seedv"])
    table = item_table(seedv.items())
    codes, names = label_views(seedv, table)["emotion"]
    counts = class_counts(codes, names, table["fold"], table["split"])
    assert list(counts.index[:-1]) == list(seedv.label_names()["emotion"])
    assert counts.loc["total", "fold1 test"] + counts.loc["total", "fold1 train"] == len(table)


def test_unknown_reader_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "stats", "--dataset", "nosuch", "--root", str(tmp_path)])
    assert result.exit_code == 2
