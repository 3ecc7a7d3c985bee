"""BalancedBatchSampler takes every label form the README promises (torch, numpy, pandas
dtypes, sparse tensors, column vectors, CSV columns) as classes, and refuses what is no class
label (missing, continuous, unorderable, multi-label, wrongly shaped) with an error that names
``labels``, the value and the fix."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
import torch

from balancer import BalancedBatchSampler, labels_of


@pytest.mark.parametrize("labels, kind, match", [
    ([], ValueError, "empty"),
    ([3, 3, 3], ValueError, "single class"),
    (np.array([0.0, np.nan, 1.0]), ValueError, r"missing label \(nan\) at position 1"),
    (np.array([0.0, np.inf, 1.0]), ValueError, r"non-integer floats \(inf"),
    (torch.tensor([0.5, 1.0, 1.0], dtype=torch.bfloat16), ValueError, "non-integer"),
    (pd.Series([1, None, 1], dtype="Int64"), ValueError, r"missing label \(<NA>\)"),
    (pd.Series(["a", None, "a"], dtype="category"), ValueError, "missing label"),
    (pd.Series(["x", None, "y"], dtype="string"), ValueError, r"missing label \(<NA>\)"),
    (np.array(["2020-01-01", "NaT", "2020-01-01"], dtype="datetime64[D]"), ValueError,
     "missing label"),
    ([{0}, {1}, {0}], ValueError, "multi-label"),
    ([[0, 1], [1], [0]], ValueError, "ragged"),
    (np.zeros((3, 2)), ValueError, r"shape \(3, 2\)"),
    (torch.tensor(1), ValueError, r"shape \(\)"),
    ((i for i in range(3)), TypeError, "generator"),
    (pd.DataFrame({"a": [0, 1]}), TypeError, "DataFrame"),
])
def test_bad_labels_are_refused_clearly(labels, kind, match):
    with pytest.raises(kind, match=match):
        BalancedBatchSampler(labels, 2)


@pytest.mark.parametrize("labels, classes, counts", [
    (torch.tensor([True, False, True]), [False, True], [1, 2]),
    (np.array([2**64 - 1, 0, 0], dtype=np.uint64), [0, 2**64 - 1], [2, 1]),
    (torch.tensor([1, 0, 0], dtype=torch.uint64), [0, 1], [2, 1]),
    (torch.tensor([0.0, 2.0, 2.0], dtype=torch.bfloat16), [0.0, 2.0], [1, 2]),
    (pd.Series([1, 0, 1], dtype="Int64"), [0, 1], [1, 2]),
    (pd.Series(["b", "a", "b"], dtype="category"), ["a", "b"], [1, 2]),
    (pd.Series(["x", "y", "x"], dtype="string"), ["x", "y"], [2, 1]),
    ([1, "1", 1], [1, "1"], [2, 1]),  # 1 and "1" stay two classes
    (np.array([-2**63, 2**63 - 1, 0]), [-2**63, 0, 2**63 - 1], [1, 1, 1]),
    ([2**70, 0, 2**70], [0, 2**70], [1, 2]),
])
def test_strange_label_dtypes_are_classes(labels, classes, counts):
    sampler = BalancedBatchSampler(labels, 2)
    assert sampler.classes.tolist() == classes
    assert sampler.class_counts.tolist() == counts


def test_mixed_unorderable_labels_are_refused_naming_labels():
    """Promise (README "Misuse is loud"): "Bad labels (...) raise a ValueError/TypeError that
    names the argument, the value and the fix."

    Reproduction: BalancedBatchSampler(pd.Series([1, "a", datetime.date(2020, 1, 1)] * 2), 2)
    (an object column with a stray date), or [pd.Timestamp("2020"), 1, 1], or [1, object(), 1].

    Expected: an error that names `labels`, the offending value/position and a fix (e.g. "cast
    the labels to str"). Before the fix: numpy's bare TypeError "'<' not supported between instances
    of 'datetime.date' and 'int'" raised from numpy/core/fromnumeric.py, naming nothing.
    (Mixed ints and strings are accepted, so this is only the unorderable case.)
    """
    for labels in (pd.Series([1, "a", datetime.date(2020, 1, 1)] * 2),
                   [pd.Timestamp("2020-01-01"), 1, 1]):
        with pytest.raises((TypeError, ValueError), match="labels"):
            BalancedBatchSampler(labels, 2)


def test_continuous_floats_in_an_object_array_are_refused():
    """Promise (README "Misuse is loud"): "Bad labels (... continuous floats such as
    `torch.rand(N)` ...) raise a ValueError".

    Reproduction: scores = np.random.default_rng(0).random(40);
    BalancedBatchSampler(scores.astype(object), 8) -- the same scores in an object array (what
    a pandas object column or a list mixing floats with other values gives) -- and
    BalancedBatchSampler([0.25, "neg", 0.75, "neg"], 2).

    Expected: the same ValueError as for the float array ("holds non-integer floats").
    Before the fix: accepted silently; every distinct score becomes its own class (40 classes of one
    sample each), i.e. a silently wrong plan.
    """
    scores = np.random.default_rng(0).random(40)
    with pytest.raises(ValueError, match="non-integer floats"):
        BalancedBatchSampler(scores, 8)  # the float array is refused ...
    with pytest.raises(ValueError, match="non-integer floats"):
        sampler = BalancedBatchSampler(scores.astype(object), 8)  # ... the same as objects not
        pytest.fail(f"accepted as {len(sampler.classes)} classes")


def test_a_csv_column_of_scores_is_refused_like_the_same_dataframe_column(
        tmp_path):
    """Promise (README "Misuse is loud" and "Wrap an existing DataLoader"): continuous floats
    are refused with a ValueError; labels may be given as `(dataframe_or_csv_path, "dx")`.

    Reproduction: df = DataFrame({"path": ..., "score": rng.random(20).round(3)});
    df.to_csv(path); BalancedBatchSampler(labels_of(df, "score"), 4) is refused ("non-integer
    floats"), but BalancedBatchSampler(labels_of(path, "score"), 4) -- the same column read
    from the CSV (balance(loader, labels=(path, "score")) takes this path) -- is accepted.

    Expected: both refused (the CSV reader keeps the column as strings, so the float check
    never runs). Before the fix: the CSV's 20 distinct scores become 20 one-sample classes, a
    silently wrong plan when the wrong column is named.
    """
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(20)],
                          "score": np.random.default_rng(0).random(20).round(3)})
    path = tmp_path / "manifest.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="non-integer floats"):
        BalancedBatchSampler(labels_of(frame, "score"), 4)
    with pytest.raises(ValueError, match="non-integer floats"):
        sampler = BalancedBatchSampler(labels_of(str(path), "score"), 4)
        pytest.fail(f"the CSV column was accepted as {len(sampler.classes)} classes")


def test_sparse_labels_are_read_dense_and_meta_labels_are_refused():
    """Promise (README "Misuse is loud"): bad labels raise a ValueError/TypeError "that names
    the argument, the value and the fix".

    Found: torch.tensor([0, 1, 1]).to_sparse() and a meta-device tensor raised torch's own
    errors. Now a sparse tensor is read as its dense values (absent entries are class 0, as in
    to_dense()), and a meta tensor, which holds no values, is refused naming `labels`.
    """
    dense = BalancedBatchSampler(torch.tensor([0, 1, 1, 0]), 2)
    sparse = BalancedBatchSampler(torch.tensor([0, 1, 1, 0]).to_sparse(), 2)
    assert sparse.class_counts.tolist() == dense.class_counts.tolist() == [2, 2]
    assert list(sparse) == list(dense)
    with pytest.raises(TypeError, match="labels is a tensor on the meta device"):
        BalancedBatchSampler(torch.tensor([0, 1, 1], device="meta"), 2)


def test_masked_labels_are_missing_labels():
    """Promise (README "Misuse is loud"): "Bad labels (... missing ...) raise a ValueError".

    Reproduction: BalancedBatchSampler(np.ma.array([0, 1, 1, 0], mask=[0, 1, 0, 0]), 2).

    Expected: the masked (missing) label at position 1 is refused like NaN / None / pd.NA.
    Before the fix: the mask is ignored; the hidden value 1 is used as the sample's class.
    """
    with pytest.raises(ValueError, match="missing"):
        BalancedBatchSampler(np.ma.array([0, 1, 1, 0], mask=[0, 1, 0, 0]), 2)


def test_a_column_vector_matrix_is_flattened():
    """Promise (sampler docstring / encode_labels: "A column vector of shape (N, 1) is
    flattened"; README: bad labels get an error that names the fix).

    Reproduction: BalancedBatchSampler(np.matrix([[0], [1], [1]]), 2).

    Expected: flattened like any (N, 1) array. Before the fix: ValueError "labels should be 1-D
    ... but got shape (3, 1). Multi-label targets are not supported" -- the message calls a
    column vector multi-label (np.matrix stays 2-D under [:, 0]).
    """
    sampler = BalancedBatchSampler(np.matrix([[0], [1], [1]]), 2)
    assert sampler.class_counts.tolist() == [1, 2]
