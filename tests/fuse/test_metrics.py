"""Our UAR/WAR/macro-F1 equal scikit-learn's on the same predictions; the baseline is the training majority."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from fuse.metrics import confusion, fold_table, majority_class, scores, summarise


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 7).flatmap(lambda c: st.tuples(
    st.lists(st.integers(0, c - 1), min_size=1, max_size=60), st.integers(0, 2**31 - 1), st.just(c))))
def test_scores_equal_sklearn(case: tuple[list[int], int, int]) -> None:
    y_true, seed, c = case
    y_true = np.array(y_true)
    y_pred = np.random.default_rng(seed).integers(0, c, size=len(y_true))
    ours = scores(y_true, y_pred)
    with warnings.catch_warnings():  # sklearn warns when y_pred has classes y_true lacks; that case is the point
        warnings.simplefilter("ignore")
        theirs = {"accuracy": accuracy_score(y_true, y_pred), "uar": balanced_accuracy_score(y_true, y_pred),
                  "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0)}
    assert ours["war"] == ours["accuracy"]
    for name, value in theirs.items():
        assert np.isclose(ours[name], value), name
    np.testing.assert_array_equal(confusion(y_true, y_pred, c), confusion_matrix(y_true, y_pred, labels=range(c)))


def test_baseline_and_tables() -> None:
    assert majority_class(np.array([1, 1, 0, 2, 2]), 3) == 1  # ties -> lowest code
    preds = pd.DataFrame({"fold": ["a"] * 4 + ["b"] * 4, "item": list("ppqqrrss"), "subject": ["x"] * 4 + ["y"] * 4,
                          "y_true": [0, 0, 1, 1, 1, 1, 1, 0], "y_pred": [0, 0, 1, 0, 1, 1, 1, 1],
                          "y_baseline": [1] * 4 + [0] * 4, "p_a": [.9, .8, .2, .6, .1, .2, .3, .4],
                          "p_b": [.1, .2, .8, .4, .9, .8, .7, .6]})
    folds = fold_table(preds)
    assert folds["accuracy"].tolist() == [0.75, 0.75] and folds["baseline_accuracy"].tolist() == [0.5, 0.25]
    summary = summarise(preds, 2, ["p_a", "p_b"])
    assert np.isclose(summary["delta_accuracy"], 0.75 - 0.375)
    assert summary["per_item"]["n_items"] == 4 and summary["confusion_matrix"] == [[2, 1], [1, 4]]
