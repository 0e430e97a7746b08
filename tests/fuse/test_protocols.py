"""No protocol puts a trial on both sides of a split; LOSO keeps subjects apart; each row is tested once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuse.protocols import PROTOCOLS, LeakageError, Split, check_split, make_splits


def rows_table(n_subjects: int = 4, n_sessions: int = 3, n_trials: int = 15, n_windows: int = 3) -> pd.DataFrame:
    records = []
    for s in range(n_subjects):
        for sess in range(1, n_sessions + 1):
            for t in range(1, n_trials + 1):
                for w in range(n_windows):
                    records.append({"item": f"x/s{s}/sess{sess}t{t:02d}", "subject": f"s{s}", "session": sess,
                                    "trial": f"s{sess}t{t:02d}", "row": w, "fold": (s * 7 + t) % 5 + 1})
    return pd.DataFrame.from_records(records)


def assert_leak_free(rows: pd.DataFrame, splits: list[Split], name: str) -> None:
    items, subjects = rows["item"].to_numpy(), rows["subject"].to_numpy()
    tested = np.concatenate([s.test for s in splits])
    assert len(tested) == len(np.unique(tested)), f"{name}: a row is tested twice"
    for split in splits:
        assert not set(items[split.train]) & set(items[split.test]), f"{name}/{split.name}: item on both sides"
        if name == "loso":
            assert not set(subjects[split.train]) & set(subjects[split.test])
        if PROTOCOLS.info(name)["subject_dependent"]:
            assert len(set(subjects[split.train]) | set(subjects[split.test])) == 1


@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_every_protocol_is_leak_free(name: str) -> None:
    rows = rows_table()
    if name == "fer2013":
        rows["fold"] = rows["fold"] % 3  # FER2013's folds: 0 Training, 1 PublicTest, 2 PrivateTest
    y = np.random.default_rng(0).integers(0, 3, size=len(rows))
    splits = make_splits(name, rows, y, k=5, seed=1)
    assert_leak_free(rows, splits, name)
    if name not in ("dfew", "fer2013"):
        assert sum(len(s.test) for s in splits) == len(rows)


def test_fer2013_trains_on_training_and_tests_on_private_test() -> None:
    rows = pd.DataFrame({"item": [f"fer2013/{i:05d}" for i in range(9)], "subject": [f"{i:05d}" for i in range(9)],
                         "session": 1, "trial": "x", "row": 0, "fold": [0, 0, 0, 0, 1, 1, 2, 2, 2]})
    y = np.zeros(9, dtype=int)
    (split,) = make_splits("fer2013", rows, y)
    assert split.train.tolist() == [0, 1, 2, 3] and split.test.tolist() == [6, 7, 8]
    with pytest.raises(ValueError, match="no subject has two or more trials"):
        make_splits("kfold", rows, y)  # every image is its own subject: kfold says what to use instead
    with pytest.raises(ValueError, match="fold 2"):
        make_splits("fer2013", rows.assign(fold=0), y)


@settings(max_examples=25, deadline=None)
@given(n_subjects=st.integers(2, 5), n_trials=st.integers(2, 9), n_windows=st.integers(1, 4), k=st.integers(2, 6),
       seed=st.integers(0, 1000))
def test_loso_and_kfold_leak_free_on_any_shape(n_subjects: int, n_trials: int, n_windows: int, k: int,
                                               seed: int) -> None:
    rows = rows_table(n_subjects, 1, n_trials, n_windows)
    y = np.random.default_rng(seed).integers(0, 2, size=len(rows))
    for name in ("loso", "kfold"):
        assert_leak_free(rows, make_splits(name, rows, y, k=k, seed=seed), name)


def test_a_leaking_split_is_refused() -> None:
    rows = rows_table(2, 1, 2, 2)  # items: s0 t1 (rows 0,1), s0 t2 (2,3), s1 t1 (4,5), s1 t2 (6,7)
    with pytest.raises(LeakageError, match="item"):
        check_split(rows, Split("bad", train=np.array([0, 2, 3]), test=np.array([1])))
    with pytest.raises(LeakageError, match="subject"):
        check_split(rows, Split("bad", train=np.array([0, 1, 6, 7]), test=np.array([2, 3])), by_subject=True)


def test_seedv_folds_are_trial_ranges_of_every_session() -> None:
    rows = rows_table(1, 3, 15, 1)
    splits = make_splits("seedv-3fold", rows, np.zeros(len(rows), dtype=int))
    assert [s.name for s in splits] == ["s0/trials1-5", "s0/trials6-10", "s0/trials11-15"]
    trial_no = rows["trial"].str[-2:].astype(int).to_numpy()
    for f, split in enumerate(splits):
        assert set(trial_no[split.test]) == set(range(5 * f + 1, 5 * f + 6))
        assert set(rows["session"].to_numpy()[split.test]) == {1, 2, 3}


def test_dfew_uses_the_fold_column_and_cross_session_the_sessions() -> None:
    rows = rows_table(2, 2, 5, 1)
    dfew = make_splits("dfew", rows, np.zeros(len(rows), dtype=int))
    assert [s.name for s in dfew] == [f"fold{i}" for i in range(1, 6)]
    assert all((rows["fold"].to_numpy()[s.test] == int(s.name[-1])).all() for s in dfew)
    cross = make_splits("cross-session", rows, np.zeros(len(rows), dtype=int))
    assert [s.name for s in cross] == ["s0/session1", "s0/session2", "s1/session1", "s1/session2"]
    with pytest.raises(ValueError, match="at least two sessions"):
        make_splits("cross-session", rows_table(2, 1, 5, 1), np.zeros(10, dtype=int))


def test_kfold_is_stratified_and_seeded() -> None:
    rows = rows_table(1, 1, 10, 2)
    y = np.repeat([0, 1] * 5, 2)
    a = make_splits("kfold", rows, y, k=5, seed=3)
    b = make_splits("kfold", rows, y, k=5, seed=3)
    assert all(np.array_equal(x.test, z.test) for x, z in zip(a, b, strict=True))
    assert all(sorted(set(y[s.test])) == [0, 1] for s in a)  # one trial of each class per fold


def test_ravdess_actor_folds_keep_actors_apart() -> None:
    # RAVDESS's fold column is the actor group (actors 1-4 -> 1, ..., 21-24 -> 6): the dfew protocol over it is
    # the standard 6-fold actor protocol, and no actor may have clips on both sides of a split.
    rows = pd.DataFrame([{"item": f"ravdess/02-01-{e:02d}-01-01-01-{a:02d}", "subject": f"{a:02d}", "session": 1,
                          "trial": f"{e:02d}", "row": 0, "fold": (a - 1) // 4 + 1}
                         for a in range(1, 25) for e in range(1, 9)])
    splits = make_splits("dfew", rows, np.zeros(len(rows), dtype=int))
    assert [s.name for s in splits] == [f"fold{f}" for f in range(1, 7)]
    subjects = rows["subject"].to_numpy()
    for f, split in enumerate(splits, start=1):
        assert sorted(set(subjects[split.test])) == [f"{a:02d}" for a in range(4 * f - 3, 4 * f + 1)]
        assert not set(subjects[split.train]) & set(subjects[split.test])
    assert_leak_free(rows, splits, "dfew")
