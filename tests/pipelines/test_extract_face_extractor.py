"""The face FeatureExtractor with the ``tiny`` marker detector and the ``tiny-clip`` backbone: rows per frame,
masked no-face rows, batching across frame batches, failures, ``detector="none"`` for face-crop datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from extract.base import EXTRACTORS, ItemError
from extract.datasets.base import DatasetReader, FrameImage, Item
from extract.face.detectors.tiny import draw_marker_face
from extract.face.extractor import FaceEmbeddingExtractor
from extract.fixtures.video import write_video

FPS_SOURCE = 25
NO_FACE = {3, 4}  # sampled frames (at 5 fps) without a marker face


def marker_frames(seconds: float, with_face: bool = True) -> Iterator[np.ndarray]:
    n = int(seconds * FPS_SOURCE)
    for i in range(n):
        img = np.full((96, 128, 3), 60, np.uint8)
        if with_face and (i // 5) not in NO_FACE:
            x = 20 + i // 2
            draw_marker_face(img, (x, 20, x + 48, 76))
        yield img


class FramesReader(DatasetReader):
    """Items are either a video path or a list of still frames kept in memory."""

    name = "frames-test"
    modalities = ("face",)

    def __init__(self, root: Path, stills: dict[str, list[FrameImage]] | None = None) -> None:
        super().__init__(root)
        self.stills = stills or {}

    def _list_items(self) -> list[Item]:
        return []

    def frames(self, item: Item) -> Iterator[FrameImage]:
        yield from self.stills[item.key]


def item(key: str, video: Path | None = None) -> Item:
    return Item(key=key, dataset="frames-test", subject="s01", session=1, trial=key.rsplit("/", 1)[-1],
                labels={"valence": 7.0}, sources={"video": str(video)} if video else {"frames": "memory"}, fold=2)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("face-videos")
    out = {
        "faces": write_video(root / "faces.avi", marker_frames(2.0), size=(128, 96), fps=FPS_SOURCE),
        "empty": write_video(root / "empty.avi", marker_frames(1.0, with_face=False), size=(128, 96), fps=FPS_SOURCE),
    }
    data = bytearray(out["faces"].read_bytes())
    cut = int(len(data) * 0.85)
    data[cut:] = bytes(len(data) - cut)  # same size, the last frames gone
    (root / "broken.avi").write_bytes(bytes(data))
    out["broken"] = root / "broken.avi"
    return out


@pytest.fixture(scope="module")
def extractor():  # noqa: ANN201
    ex = EXTRACTORS.create("face", detector="tiny", backbone="tiny-clip", fps=5.0, detect_batch=3, embed_batch=4)
    yield ex
    ex.close()


def test_one_row_per_sampled_frame_with_masked_no_face_rows(extractor, videos, monkeypatch) -> None:  # noqa: ANN001
    reader = FramesReader(videos["faces"].parent)
    detect_calls, embed_calls = extractor.pipeline.detector.forward_calls, 0
    forward = extractor.backbone.forward

    def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
        nonlocal embed_calls
        embed_calls += 1
        return forward(*a, **k)

    with monkeypatch.context() as m:
        m.setattr(extractor.backbone, "forward", counting)
        rows = extractor.extract(reader, item("t/s01/01", videos["faces"]))
    assert rows.n_rows == 10 and rows.embeddings.shape == (10, 32)
    np.testing.assert_allclose(rows.t_start_s, np.arange(10) * 0.2, atol=1e-6)
    np.testing.assert_allclose(rows.t_end_s - rows.t_start_s, 0.2)
    found = rows.quality["face_found"]
    assert found.tolist() == [i not in NO_FACE for i in range(10)]
    assert np.isnan(rows.embeddings[~found]).all()  # masked, not zeros
    assert np.isfinite(rows.embeddings[found]).all()
    assert np.isnan(rows.quality["det_score"][~found]).all() and (rows.quality["det_score"][found] > 0.9).all()
    assert rows.labels["valence"].tolist() == [7.0] * 10 and rows.fold == 2
    # 10 frames in detector batches of 3 -> 4 calls; 8 crops in backbone batches of 4 across those -> 2 calls.
    assert extractor.pipeline.detector.forward_calls - detect_calls == 4
    assert embed_calls == 2
    assert set(extractor.last_stage_s) >= {"decode", "detect", "align", "embed"}

    # Batching does not change an embedding: each crop alone gives the same vector.
    crops = [r.crop for r in extractor.pipeline.process_video(videos["faces"]) if r.face_found]
    alone = np.stack([extractor.backbone.embed(c[None])[0] for c in crops])
    np.testing.assert_allclose(rows.embeddings[found], alone, atol=1e-5)


def test_no_face_at_all_is_data_and_corrupt_video_fails_the_item(extractor, videos) -> None:  # noqa: ANN001
    reader = FramesReader(videos["faces"].parent)
    rows = extractor.extract(reader, item("t/s01/02", videos["empty"]))  # every sampled frame a no-face row
    assert rows.n_rows == 5 and not rows.quality["face_found"].any() and np.isnan(rows.embeddings).all()
    with pytest.raises(ItemError, match="truncated"):
        extractor.extract(reader, item("t/s01/03", videos["broken"]))


def test_corrupt_video_rows_kept_on_request(videos) -> None:  # noqa: ANN001
    ex = EXTRACTORS.create("face", detector="tiny", backbone="tiny-clip", fps=5.0, on_corrupt="keep")
    rows = ex.extract(FramesReader(videos["faces"].parent), item("t/s01/03", videos["broken"]))
    assert 0 < rows.n_rows < 10 and "truncated" in rows.meta["decode_error"]
    assert rows.quality["face_found"].any()
    assert ex.manifest_parts()["config"]["on_corrupt"] == "keep"


def test_detector_none_embeds_whole_face_crops(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stills = [FrameImage(t_s=0.0, image=rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))]
    reader = FramesReader(tmp_path, {"fer/00001": stills})
    ex = EXTRACTORS.create("face", detector="none", backbone="tiny-clip", crop_size=224)
    rows = ex.extract(reader, item("fer/00001"))
    assert rows.n_rows == 1 and rows.quality["face_found"].tolist() == [True]
    assert np.isnan(rows.quality["det_score"]).all() and np.isfinite(rows.embeddings).all()
    import cv2

    crop = cv2.resize(stills[0].image, (224, 224), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(rows.embeddings[0], ex.backbone.embed(crop[None])[0], atol=1e-6)
    parts = ex.manifest_parts()
    assert parts["extractor"] == "face/none+tiny-clip" and parts["model"]["detector"] == {"name": "none"}


def test_manifest_parts_name_every_feature_changing_fact(extractor) -> None:  # noqa: ANN001
    assert isinstance(extractor, FaceEmbeddingExtractor) and extractor.kind == "face"
    parts = extractor.manifest_parts()
    assert parts["extractor"] == "face/tiny+tiny-clip" and parts["dim"] == 32 and parts["dtype"] == "float16"
    assert parts["config"]["fps"] == 5.0 and parts["config"]["crop_size"] == 224
    assert len(parts["model"]["backbone"]["weights_sha256"]) == 64 and parts["model"]["detector"]["name"] == "tiny"
    assert "dtype" not in parts["model"]["backbone"]  # compute precision follows the device: item meta, not here
    assert parts["preprocessing"]["face"]["alignment"]["template"].startswith("arcface")
    assert "detect_batch" not in parts["config"] and "embed_batch" not in parts["config"]  # speed only


def test_rows_say_their_clock_and_where_the_first_frame_is_on_the_file_clock(tmp_path: Path) -> None:
    from extract.fixtures.video import tone

    # the video starts 0.5 s after the file (the audio starts at 0)
    video = write_video(tmp_path / "late.mkv", marker_frames(1.0), size=(128, 96), fps=FPS_SOURCE,
                        audio=tone(1.5, 440.0), audio_offset_s=-0.5)
    ex = EXTRACTORS.create("face", detector="tiny", backbone="tiny-clip", fps=5.0)
    rows = ex.extract(FramesReader(tmp_path), item("t/s01/09", video))
    np.testing.assert_allclose(rows.t_start_s, np.arange(5) * 0.2, atol=1e-6)  # t = 0 at the first frame
    assert rows.meta["time_origin"] == "first_frame"
    assert rows.meta["first_frame_file_s"] == pytest.approx(0.5, abs=1e-3)
    parts = ex.manifest_parts()
    assert parts["preprocessing"]["face"]["time_origin"] == "first_frame"
    assert "first frame" in parts["preprocessing"]["rows"]


def test_rows_are_reported_per_frame_batch_while_the_item_runs(extractor, videos) -> None:  # noqa: ANN001
    from extract.progress import reporting

    counts: list[tuple[int, int | None]] = []
    with reporting(lambda rows, expected: counts.append((rows, expected)), interval_s=0.0):
        rows = extractor.extract(FramesReader(videos["faces"].parent), item("t/s01/03", videos["faces"]))
    seen = [c[0] for c in counts]  # the expectation first (0 rows), then a growing count per frame batch
    assert seen[0] == 0 and seen[-1] == rows.n_rows == 10 and seen == sorted(set(seen)) and len(seen) >= 3
    assert {c[1] for c in counts} == {rows.n_rows}  # from the header (duration x fps): what a clean decode gives
