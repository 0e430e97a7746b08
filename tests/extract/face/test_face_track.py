"""Subject tracking: the same face by box continuity, not the largest face of each frame."""

from __future__ import annotations

import numpy as np
import pytest

from extract.face.detectors.base import Detections
from extract.face.detectors.tiny import marker_landmarks
from extract.face.track import SubjectTracker, TrackConfig, box_iou, largest_face, match_face, track_subject


def dets(*faces: tuple[float, float, float, float, float]) -> Detections:
    """Detections from (x1, y1, x2, y2, score) tuples."""
    if not faces:
        return Detections.empty()
    arr = np.array(faces, np.float32)
    return Detections.from_arrays(arr[:, :4], np.stack([marker_landmarks(b) for b in arr[:, :4]]), arr[:, 4])


def subject_box(dets_: Detections, pick: int | None) -> list[float] | None:
    return None if pick is None else dets_.boxes[pick].tolist()


def test_box_iou() -> None:
    iou = box_iou(np.array([0, 0, 10, 10]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [1.0, 1 / 3, 0.0])


def test_keeps_the_subject_when_a_bigger_distractor_appears() -> None:
    seq = []
    for t in range(30):
        x = 50 + 2 * t  # the subject drifts right
        faces = [(x, 60, x + 40, 100, 0.99)]
        if t >= 10:  # a much bigger, more confident face appears elsewhere
            faces.append((200, 20, 300, 120, 1.0))
        seq.append(dets(*faces))
    picks = track_subject(seq)
    assert all(p is not None for p in picks)
    boxes = [subject_box(d, p) for d, p in zip(seq, picks, strict=True)]
    assert [b[0] for b in boxes] == [50 + 2 * t for t in range(30)]
    # Largest-per-frame would have jumped to the distractor:
    assert subject_box(seq[15], largest_face(seq)[15])[0] == 200


def test_starts_from_the_largest_confident_face_that_stays() -> None:
    # A big false positive for one frame only; the subject is present throughout.
    seq = [dets((10, 10, 50, 50, 0.95), (100, 0, 200, 100, 0.99))] + [dets((10, 10, 50, 50, 0.95))] * 5
    picks = track_subject(seq, TrackConfig(init_frames=5))
    assert [subject_box(d, p) for d, p in zip(seq, picks, strict=True)] == [[10, 10, 50, 50]] * 6
    # Two persistent faces: the larger (score x area) one is the subject.
    seq = [dets((10, 10, 50, 50, 0.99), (100, 10, 180, 90, 0.95)) for _ in range(6)]
    picks = track_subject(seq)
    assert all(subject_box(d, p)[0] == 100 for d, p in zip(seq, picks, strict=True))


def test_missing_frames_give_no_face_then_reacquire_keeping_the_held_faces() -> None:
    cfg = TrackConfig(init_frames=2, max_misses=3)
    subject = (50, 50, 90, 90, 0.99)
    other = (300, 50, 340, 90, 0.99)
    seq = [dets(subject), dets(subject)]  # acquired
    seq += [dets(other), dets(), dets(other)]  # the subject is gone: no fallback to the other person
    seq += [dets(subject)]  # back within max_misses: resumed
    seq += [dets(other)] * 4  # gone for more than max_misses frames: the held frames open the next window,
    seq += [dets(other)] * 3  # so the other person's faces in them are kept (a new track, not thrown away)
    picks = track_subject(seq, cfg)
    boxes = [subject_box(d, p) for d, p in zip(seq, picks, strict=True)]
    assert boxes[:2] == [[50, 50, 90, 90]] * 2
    assert boxes[2:5] == [None, None, None]
    assert boxes[5] == [50, 50, 90, 90]
    assert boxes[6:] == [[300, 50, 340, 90]] * 7
    tracker = SubjectTracker(cfg)
    decisions = [d for x in seq for d in tracker.observe(x)] + tracker.finish()
    assert [d.track_id for d in decisions[:2]] == [0, 0] and {d.track_id for d in decisions[6:]} == {1}
    assert decisions[6].identity_changed and not any(d.identity_changed for d in decisions[7:])


def _desc(*vectors: list[float]) -> np.ndarray:
    v = np.array(vectors, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_appearance_gate_refuses_another_person_in_the_subjects_box() -> None:
    cfg = TrackConfig(init_frames=2, max_misses=2)
    a, b = [1.0, 0.0, 0.1], [0.0, 1.0, 0.1]
    box = (50, 50, 90, 90, 0.99)
    tracker = SubjectTracker(cfg)
    seq = [(a, False)] * 3 + [(b, False)] * 5 + [(a, True)] * 3  # b takes a's place without a cut; a returns at a cut
    decisions = []
    for vec, cut in seq:
        decisions += tracker.observe(dets(box), _desc(vec), cut=cut)
    decisions += tracker.finish()
    ids = [d.track_id for d in decisions]
    assert ids[:3] == [0, 0, 0]
    assert ids[3:8] == [1] * 5  # never continued as person 0; re-acquired as a new identity after the misses
    assert decisions[3].identity_changed
    assert ids[8:] == [0, 0, 0]  # the first person again, recognised by the template (same id)
    assert decisions[8].identity_changed


def test_cut_ends_the_track_even_when_the_box_continues() -> None:
    tracker = SubjectTracker(TrackConfig(init_frames=1))
    out = []
    for t in range(6):
        out += tracker.observe(dets((50, 50, 90, 90, 0.99)), None, cut=(t == 3))
    out += tracker.finish()
    assert [d.pick for d in out] == [0] * 6
    assert [d.track_id for d in out] == [0, 0, 0, 1, 1, 1]  # geometry only: a new track after the cut


def test_multi_tracker_ids_follow_each_face() -> None:
    from extract.face.track import MultiTracker

    mt = MultiTracker(TrackConfig())
    first = mt.observe(dets((10, 10, 50, 50, 0.99), (200, 10, 240, 50, 0.98)))
    second = mt.observe(dets((202, 12, 242, 52, 0.99), (12, 10, 52, 50, 0.97)))  # order swapped by score
    assert sorted(first.tolist()) == [0, 1]
    assert second.tolist() == [first[1], first[0]]
    assert mt.observe(dets((12, 10, 52, 50, 0.97)), cut=True).tolist() == [2]


def test_match_rules_gate_by_overlap_shift_and_size() -> None:
    cfg = TrackConfig(iou_min=0.3, center_tol=0.5, size_ratio_max=2.0)
    ref = np.array([100, 100, 140, 140], np.float32)
    assert match_face(ref, dets((105, 100, 145, 140, 0.9)), cfg) == 0  # overlaps
    assert match_face(ref, dets((160, 100, 200, 140, 0.9)), cfg) is None  # 60 px away, side 40
    assert match_face(ref, dets((160, 100, 200, 140, 0.9)), cfg, misses=2) == 0  # the allowance grows
    assert match_face(ref, dets((90, 90, 190, 190, 0.9)), cfg) is None  # 6x the area
    # Of two candidates, the one overlapping most.
    assert match_face(ref, dets((130, 100, 170, 140, 0.99), (102, 101, 142, 141, 0.5)), cfg) == 1


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_incremental_tracker_equals_the_pure_function_for_any_chunking(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    seq = []
    for t in range(40):
        faces = []
        if rng.random() > 0.2:
            x = 40 + t
            faces.append((x, 40, x + 30, 70, 0.9 + 0.1 * rng.random()))
        if rng.random() > 0.5:
            faces.append((150 + rng.integers(0, 40), 40, 210, 100, 0.95))
        seq.append(dets(*faces))
    expected = track_subject(seq)
    tracker = SubjectTracker()
    got: list[int | None] = []
    for start in range(0, len(seq), chunk):
        for d in seq[start : start + chunk]:
            got += tracker.push(d)
    got += tracker.flush()
    assert got == expected and len(got) == len(seq)
