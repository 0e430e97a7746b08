"""Cross-item batching of single-image items: the FER2013 fixture (folder variant, ``--detector none``, tiny-clip)
extracted a group of items per backbone call equals the per-item path row for row, with far fewer backbone calls;
a corrupt image fails alone; a partial run resumes to the same store.

Every column is compared exactly except the embeddings: a crop's float32 embedding depends on the size of the
batch it went through by float rounding (~1e-6 for tiny-clip on the CPU), which can flip the last bit of a stored
float16 value (seen: 1 of 768 values). They are compared to within one float16 step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from extract_fakes import store_table

from extract.backbones.base import Backbone
from extract.base import FeatureExtractor
from extract.face.extractor import FaceEmbeddingExtractor
from extract.fixtures.fer2013 import write_fer2013
from pipelines.jobs import ExtractConfig, run_extract

IMAGES = 24  # + 1 blank image = 25 items
EMBED_BATCH = 8
BAD_KEY_PART = "im3"  # the item whose jpg gets corrupted


@pytest.fixture(scope="module")
def fer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_fer2013(tmp_path_factory.mktemp("fer") / "fer2013", images=IMAGES, folders=True)
    bad = next(root.glob(f"*/*/{BAD_KEY_PART}.jpg"))
    bad.write_bytes(b"\x00" * bad.stat().st_size)  # same size, not an image
    return root


def cfg(root: Path, out: Path, **kw: object) -> ExtractConfig:
    base: dict[str, object] = dict(dataset="fer2013", root=root, out_dir=out, gpu=(-1,), progress=False,
                                   detector="none", backbone="tiny-clip", crop_size=64, embed_batch=EMBED_BATCH,
                                   reader_options={"variant": "folder"}, commit_interval_s=0.0)
    base.update(kw)
    return ExtractConfig(**base)  # type: ignore[arg-type]


@pytest.fixture()
def embed_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts ``Backbone.embed`` calls (one list entry per call: its number of crops)."""
    calls: list[int] = []
    embed = Backbone.embed

    def counting(self: Backbone, crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        return embed(self, crops)

    monkeypatch.setattr(Backbone, "embed", counting)
    return calls


def assert_same_rows(a: Path, b: Path) -> None:
    """Equal stores: every row column exactly, the embeddings to within one float16 step."""
    ta, tb = store_table(a), store_table(b)
    assert sorted(ta) == sorted(tb) and len(ta["item"]) == len(tb["item"])
    for name in ta:
        if name == "embeddings":
            np.testing.assert_allclose(ta[name], tb[name], rtol=1e-3, atol=1e-6)
        elif ta[name].dtype.kind == "f":
            np.testing.assert_array_equal(ta[name], tb[name], err_msg=name)
        else:
            assert (ta[name] == tb[name]).all(), name


def per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the per-item path (the behaviour before cross-item batching)."""
    monkeypatch.setattr(FaceEmbeddingExtractor, "items_per_call", FeatureExtractor.items_per_call)


def test_batched_items_equal_the_per_item_path_with_fewer_backbone_calls(
        fer: Path, tmp_path: Path, embed_calls: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    batched = run_extract(cfg(fer, tmp_path / "batched"))
    batched_calls = list(embed_calls)
    assert batched.store("face").items_per_call == EMBED_BATCH
    with monkeypatch.context() as m:
        per_item(m)
        embed_calls.clear()
        single = run_extract(cfg(fer, tmp_path / "single"))
    single_calls = list(embed_calls)
    assert single.store("face").items_per_call == 1

    n_items = IMAGES + 1
    for result in (batched, single):
        s = result.summaries[0]
        assert result.exit_code == 0 and s["items"]["done"] == n_items - 1
        [(key, error)] = s["failures"].items()  # the corrupt image fails alone
        assert key.endswith(f"/{BAD_KEY_PART}") and "cannot decode image" in error
    assert batched.summaries[0]["failures"] == single.summaries[0]["failures"]
    assert_same_rows(batched.store("face").path, single.store("face").path)
    assert len(store_table(batched.store("face").path)["item"]) == n_items - 1

    assert len(single_calls) == n_items - 1 and set(single_calls) == {1}  # one call per good image
    # Groups of 8 items (the bad one gives no crop): 8+8+7 crops in 3 calls + 1 for the last item.
    assert sorted(batched_calls) == [1, 7, 8, 8]
    assert len(batched_calls) / n_items < 0.2


def test_partial_batched_run_resumes_to_the_full_store(fer: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    first = run_extract(cfg(fer, out, limit=10))
    assert first.summaries[0]["items"]["done"] + len(first.summaries[0]["failures"]) == 10
    resumed = run_extract(cfg(fer, out))
    plan = resumed.store("face")
    assert plan.path == first.store("face").path and len(plan.todo) == IMAGES + 1 - 10
    assert resumed.summaries[0]["items"]["skipped_done"] == first.summaries[0]["items"]["done"]
    reference = run_extract(cfg(fer, tmp_path / "reference"))
    assert_same_rows(plan.path, reference.store("face").path)


@pytest.mark.parametrize("group_call", ["default", "raises"])
def test_grouped_items_keep_per_item_failures_and_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          group_call: str) -> None:
    """Groups of 4 through the default ``extract_many`` (a bad item's exception in its place), or an
    ``extract_many`` that fails as a whole (the worker redoes the group item by item): the same store and failures
    as the per-item run."""
    from extract_fakes import FakeExtractor, write_fakeds

    root = write_fakeds(tmp_path / "fakeds", subjects=2, trials=3)
    (root / "vec" / "s01_t02.bin").write_bytes(b"BAD")
    fake = dict(dataset="fakeds", root=root, gpu=(-1,), plugins=("extract_fakes",), progress=False, modality="vec")
    reference = run_extract(ExtractConfig(out_dir=tmp_path / "ref", **fake))  # type: ignore[arg-type]
    monkeypatch.setattr(FakeExtractor, "items_per_call", lambda self, reader, items: 4)
    if group_call == "raises":
        def broken(self: FakeExtractor, reader: object, items: object) -> list[object]:
            raise RuntimeError("the model fell over")

        monkeypatch.setattr(FakeExtractor, "extract_many", broken)
    grouped = run_extract(ExtractConfig(out_dir=tmp_path / "grouped", **fake))  # type: ignore[arg-type]
    assert grouped.store("vec").items_per_call == 4
    s, r = grouped.summaries[0], reference.summaries[0]
    assert s["items"]["done"] == 5 and s["failures"] == r["failures"] and list(s["failures"]) == ["fakeds/s01/t02"]
    assert_same_rows(grouped.store("vec").path, reference.store("vec").path)
