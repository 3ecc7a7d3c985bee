"""Multi-label targets: every accepted form gives the same compact rows, and every bad input
fails with a message naming the argument, the value and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from balancer import labels_of
from balancer.datasets import load_chestxray14_labels
from balancer.labels import MultiLabels, _multi, encode_multilabels, multilabels_of
from balancer.labels._multi import join_rows, take_rows


def matrices(min_labels=2, max_labels=6):
    """0/1 matrices in which every label has a positive (rows may be all-negative)."""
    shape = st.tuples(st.integers(1, 40), st.integers(min_labels, max_labels))
    return hnp.arrays(np.uint8, shape, elements=st.integers(0, 1)).filter(
        lambda m: m.any(axis=0).all())


def assert_same(a: MultiLabels, b: MultiLabels) -> None:
    assert a.names.tolist() == b.names.tolist()
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)


@settings(max_examples=60, deadline=None)
@given(matrix=matrices())
def test_every_form_gives_the_same_rows(matrix, tmp_path_factory):
    n, num_labels = matrix.shape
    names = [f"L{j}" for j in range(num_labels)]
    reference = encode_multilabels(matrix, names=names)
    # The rows are exactly the matrix's positives, each row's labels ascending, O(N + P) storage.
    assert reference.indptr.shape == (n + 1,) and reference.indices.shape == (matrix.sum(),)
    np.testing.assert_array_equal(reference.dense(np.uint8), matrix)
    np.testing.assert_array_equal(reference.counts, matrix.sum(axis=0))
    np.testing.assert_array_equal(reference.no_finding, matrix.sum(axis=1) == 0)
    sets = [[names[j] for j in np.flatnonzero(row)] for row in matrix]
    joined = ["|".join(s) if s else "No Finding" for s in sets]
    frame = pd.DataFrame({"findings": joined, "lists": sets})
    path = tmp_path_factory.mktemp("csv") / "manifest.csv"
    frame[["findings"]].to_csv(path, index=False)
    forms = [
        encode_multilabels(matrix.astype(bool), names=names),
        encode_multilabels(matrix.astype(np.float32), names=names),
        encode_multilabels(torch.from_numpy(matrix).to(torch.bfloat16), names=names),
        encode_multilabels(pd.DataFrame(matrix, columns=names)),
        labels_of(frame, "findings", multilabel=True),
        labels_of(str(path), "findings", multilabel=True),
        labels_of(torch.utils.data.TensorDataset(torch.zeros(n)), labels=(frame, "lists"),
                  multilabel=True),
        labels_of(frame.to_dict("records"), "lists", multilabel=True),
        encode_multilabels(pd.Series(sets)),
    ]
    for form in forms:
        if form.num_labels != num_labels:  # a name nobody carries is unknown to name-based forms
            continue
        assert_same(form, reference)


@settings(max_examples=40, deadline=None)
@given(matrix=matrices(), data=st.data())
def test_taking_and_joining_rows_match_the_dense_matrix(matrix, data):
    # What a Subset and a ConcatDataset do to multi-label targets: take rows (any order,
    # repeats allowed) and join parts, the label names kept.
    targets = encode_multilabels(matrix)
    rows = data.draw(st.lists(st.integers(0, len(matrix) - 1), max_size=30))
    taken = take_rows(targets, np.asarray(rows, dtype=np.int64))
    assert taken.names.tolist() == targets.names.tolist()
    np.testing.assert_array_equal(taken.dense(np.uint8), matrix[rows])
    joined = join_rows([targets, taken, targets])
    np.testing.assert_array_equal(joined.dense(np.uint8),
                                  np.concatenate([matrix, matrix[rows], matrix]))


def test_joining_parts_with_different_names_maps_them_onto_the_union():
    first = encode_multilabels(["b|d", "d"])
    second = encode_multilabels([["a"], [], ["d", "a"]])
    joined = join_rows([first, second])
    assert joined.names.tolist() == ["a", "b", "d"]
    assert joined.dense(np.int8).tolist() == [[0, 1, 1], [0, 0, 1], [1, 0, 0], [0, 0, 0],
                                              [1, 0, 1]]
    with pytest.raises(ValueError, match=r"label names of types that cannot be sorted together "
                                         r"\(\['int', 'str'\]\)"):
        join_rows([first, encode_multilabels(np.eye(2, dtype=int))])


def test_no_finding_is_the_empty_set_and_names_are_kept():
    targets = encode_multilabels(["Effusion|Mass", "No Finding", "Mass", ""])
    assert targets.names.tolist() == ["Effusion", "Mass"]
    assert targets.counts.tolist() == [1, 2]
    assert targets.no_finding.tolist() == [False, True, False, True]
    assert targets.labels_per_sample.tolist() == [2, 0, 1, 0]
    listed = encode_multilabels([["b"], [], ["a", "b", "a"]], names=["b", "a", "c"],
                                require_positives=False)
    assert listed.names.tolist() == ["b", "a", "c"]  # the given order is the label order
    assert listed.dense(np.int8).tolist() == [[1, 0, 0], [0, 0, 0], [1, 1, 0]]  # repeats once
    assert repr(targets) == "MultiLabels(samples=4, labels=2, positives=3, no_finding=2)"


def test_dense_input_is_converted_block_by_block(monkeypatch):
    rng = np.random.default_rng(0)
    matrix = (rng.random((1000, 7)) < 0.2).astype(np.int64)
    whole = encode_multilabels(matrix)
    monkeypatch.setattr(_multi, "_DENSE_BLOCK_ROWS", 37)
    assert_same(encode_multilabels(matrix), whole)
    matrix[999, 3] = 5  # found in the last block, at its position in the whole matrix
    with pytest.raises(ValueError, match=r"labels\[999, 3\] = 5"):
        encode_multilabels(matrix)


def test_shipped_chestxray14_table():
    table = load_chestxray14_labels()
    assert list(table.columns) == ["Image Index", "Finding Labels", "Patient ID"]
    assert len(table) == 112120 and table["Patient ID"].nunique() == 30805
    targets = labels_of(table, "Finding Labels", multilabel=True)
    counts = dict(zip(targets.names.tolist(), targets.counts.tolist(), strict=True))
    assert len(counts) == 14 and counts["Hernia"] == 227 and counts["Infiltration"] == 19894
    assert int(targets.no_finding.sum()) == 60361
    assert len(targets.indices) == 81176  # 0.72 findings per image
    assert targets.indptr.nbytes + targets.indices.nbytes < 1.3e6  # never a dense float matrix


def test_dataset_attributes_and_named_attributes():
    class Scans(torch.utils.data.Dataset):
        def __init__(self):
            self.targets = np.array([[1, 0], [0, 1], [1, 1]])
            self.findings = ["a|b", "a", "No Finding"]

        def __len__(self):
            return 3

    assert labels_of(Scans(), multilabel=True).counts.tolist() == [2, 2]
    assert labels_of(Scans(), "findings", multilabel=True).counts.tolist() == [2, 1]


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("labels, error, match", [
    (np.array([[0, 2], [1, 1]]), ValueError,
     r"labels should hold only 0 and 1, but labels\[0, 1\] = 2; pass a 0/1 \(or boolean\) matrix"),
    (np.array([[0.5, 1.0], [1.0, 0.0]]), ValueError, r"labels\[0, 0\] = 0.5.*scores > 0.5"),
    (torch.tensor([[-1, 1], [1, 0]]), ValueError, r"labels\[0, 0\] = -1"),
    (np.array([[1, 0], [1, 0]]), ValueError,
     r"label\(s\) \[1\] have no positive sample \(1 such\).*Drop those labels"),
    (np.ones((4, 1)), ValueError,
     r"L = 1 label\(s\) \[0\]; multi-label balancing needs at least 2\. For one label .*use "
     r"balancer.BalancedBatchSampler"),
    (["a", "a|a"], ValueError, r"L = 1 label\(s\) \['a'\]"),
    ([["a"], "b"], ValueError,
     r"labels mixes forms: item 0 is one of lists of label names, but item 1 is a str \('b'\)"),
    (["a|b", ["b"]], ValueError, r"mixes forms: item 0 is one of '\|'-joined strings, but item 1"),
    (["a|b", None], ValueError, r"missing entry \(None\) at position 1"),
    (["a|b", float("nan")], ValueError, r"missing entry \(nan\) at position 1"),
    ([None, "a"], ValueError, r"missing entry \(None\) at position 0"),
    ([[0, 1], [1, 0]], ValueError, r"equal-length lists of 0s and 1s.*np.asarray\(labels\)"),
    (["Mass|No Finding", "Mass"], ValueError,
     r"labels\[0\] = 'Mass\|No Finding' joins 'No Finding' with findings"),
    ([["a", ["b"]], ["a"]], ValueError, r"labels\[0\] holds \['b'\]; each sample's list"),
    ([["a", 1], ["b"]], ValueError, r"mixes label names of types that cannot be sorted"),
    (np.array([["a", "b"], ["b", "a"]]), TypeError, r"dtype <U1.*one list .* of names"),
    (np.zeros((2, 2, 2)), ValueError, r"\(N, L\) 0/1 label matrix .*got a 3-D array of shape "
                                      r"\(2, 2, 2\); reshape it to \(N, L\)"),
    (torch.zeros(2, 2, 2), ValueError, r"\(N, L\) 0/1 label matrix .*got a 3-D array of shape "
                                       r"\(2, 2, 2\); reshape it to \(N, L\)"),
    (np.zeros((0, 3)), ValueError, "labels is empty"),
    ([], ValueError, "labels is empty"),
    (5, TypeError, "should be multi-label targets"),
    ([1, 2, 3], TypeError, r"labels\[0\] is a int \(1\).*For one class per sample use "
                           r"balancer.BalancedBatchSampler"),
])
def test_bad_targets(labels, error, match):
    with pytest.raises(error, match=match):
        encode_multilabels(labels)


def test_bad_names_and_sources(tmp_path):
    with pytest.raises(ValueError, match=r"names has 3 entries but labels has 2 columns"):
        encode_multilabels(np.eye(2), names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"uses label\(s\) \['c'\] that are not in names"):
        encode_multilabels(["a|c", "b"], names=["a", "b"])
    frame = pd.DataFrame({"f": ["a|b", "a"]})
    with pytest.raises(ValueError, match=r"column 'g' is not in the DataFrame; pick one of \['f'\]"):
        labels_of(frame, "g", multilabel=True)
    with pytest.raises(ValueError, match=r"key 'f' is missing from item 1"):
        labels_of([{"f": ["a"]}, {"g": ["b"]}], "f", multilabel=True)
    path = tmp_path / "m.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'g' is not in .*m.csv'; pick one of \['f'\]"):
        labels_of(str(path), "g", multilabel=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        labels_of(str(tmp_path / "none.csv"), "f", multilabel=True)
    with pytest.raises(ValueError, match=r"labels gives 2 labels but the dataset has 3 items"):
        labels_of(torch.utils.data.TensorDataset(torch.zeros(3)), labels=(frame, "f"),
                  multilabel=True)
    with pytest.raises(ValueError, match="dataset is a DataFrame; name the column"):
        multilabels_of(frame)
    with pytest.raises(ValueError, match="found no multi-label targets on dataset of type"):
        labels_of(torch.utils.data.TensorDataset(torch.zeros(3)), multilabel=True)
    with pytest.raises(ValueError, match="has no attribute 'findings'"):
        labels_of(torch.utils.data.TensorDataset(torch.zeros(3)), "findings", multilabel=True)
    with pytest.raises(TypeError, match="multilabel should be True or False"):
        labels_of(frame, "f", multilabel="yes")


def test_single_label_path_points_to_multilabel_mode():
    frame = pd.DataFrame({"Finding Labels": ["Mass", "Effusion|Mass"]})
    with pytest.raises(ValueError, match=r"labels_of\(\.\.\., multilabel=True\) and a "
                                         r"multi-label sampler"):
        labels_of(frame, "Finding Labels")
