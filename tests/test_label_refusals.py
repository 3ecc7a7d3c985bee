"""Label input at the seams: bad labels are refused before training, naming the argument (or
table and row), the value and the fix; a few more accepted forms read as their dense twin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from balancer import MultiLabelBalancedSampler, RepeatFactorSampler
from balancer.labels import encode_labels, encode_multilabels, labels_of

MATRIX = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]])


def _same(targets, expected=MATRIX, names=(0, 1, 2)):
    assert targets.names.tolist() == list(names)
    np.testing.assert_array_equal(targets.dense(np.int64), expected)


# ------------------------------------------------------------------ "No Finding" with findings
@pytest.mark.parametrize("labels", [["A|No Finding", "B"], [["A", "No Finding"], ["B"]],
                                    [("No Finding", "A"), ("B",)]])
def test_no_finding_with_a_finding_is_refused_in_every_form(labels):
    """Broke: ["A", "No Finding"] made "No Finding" a label of its own, while the same row as
    "A|No Finding" was refused."""
    with pytest.raises(ValueError, match=r"labels\[0\] = .*'No Finding' with findings; an image "
                                         r"either has findings or none: fix that row"):
        encode_multilabels(labels, require_positives=False, min_labels=1)


def test_no_finding_alone_is_the_empty_set_in_every_form():
    for labels in (["No Finding", "B|A"], [["No Finding"], ["B", "A"]],
                   [["No Finding", "No Finding"], ["A", "B"]]):
        targets = encode_multilabels(labels)
        assert targets.labels_per_sample.tolist() == [0, 2]
        assert targets.names.tolist() == ["A", "B"]


def test_no_finding_with_a_finding_is_refused_from_a_list_of_dicts():
    data = [{"label": ["A"]}, {"label": ["A", "No Finding"]}, {"label": ["B"]}]
    with pytest.raises(ValueError, match=r"key 'label'\[1\] = \['A', 'No Finding'\] lists "
                                         r"'No Finding' with findings"):
        labels_of(data, "label", multilabel=True)


# ------------------------------------------------------------------ empty findings cells
@pytest.mark.parametrize("cell", ["", "  ", "|"])
def test_an_empty_findings_cell_of_a_dataframe_is_missing(cell):
    """Broke: a DataFrame (or list of dicts) cell "" read as the empty set, so a row whose
    findings were never filled in joined the no-finding bucket without a word."""
    table = pd.DataFrame({"f": ["A", "No Finding", cell, "B|A"]})
    with pytest.raises(ValueError, match=r"column 'f' of the DataFrame has an empty cell at row 2 "
                                         r"\(1 such rows in all\): a cell without findings is a "
                                         r"missing entry, not 'No Finding'; give every row its "
                                         r"findings \('No Finding' for none\) or drop those rows"):
        labels_of(table, "f", multilabel=True)
    records = table.to_dict("records")
    with pytest.raises(ValueError, match=r"key 'f' of the list of dicts has an empty cell at row 2"):
        labels_of(records, "f", multilabel=True)


def test_an_empty_findings_cell_of_a_csv_file_names_the_file_and_row(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"f": ["A", "B", "", "No Finding", ""]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'f' of '.*manifest.csv' has an empty cell at "
                                         r"row 2 \(2 such rows in all\)"):
        labels_of(str(path), "f", multilabel=True)
    with pytest.raises(ValueError, match=r"column 'f' of .* has an empty cell at row 2"):
        labels_of(TensorDataset(torch.zeros(5)), (str(path), "f"), multilabel=True)


def test_a_no_finding_cell_and_an_empty_list_stay_the_empty_set():
    table = pd.DataFrame({"f": ["A", "No Finding"], "g": [["A"], []]})
    assert labels_of(table, "f", multilabel=True).labels_per_sample.tolist() == [1, 0]
    assert labels_of(table, "g", multilabel=True).labels_per_sample.tolist() == [1, 0]


# ------------------------------------------------------------------ nullable and bool frames
@pytest.mark.parametrize("dtype", ["Int64", "boolean", "Int8", "UInt8", "Float64"])
def test_a_complete_nullable_frame_reads_as_its_dense_twin(dtype):
    """Broke: DataFrame.to_numpy() gave objects for nullable columns, refused as "dtype object"."""
    frame = pd.DataFrame(MATRIX.astype(bool) if dtype == "boolean" else MATRIX,
                         columns=["a", "b", "c"]).astype(dtype)
    _same(encode_multilabels(frame), names=["a", "b", "c"])


@pytest.mark.parametrize("dtype", ["Int64", "boolean"])
def test_a_missing_cell_of_a_nullable_frame_names_the_row_and_column(dtype):
    frame = pd.DataFrame(MATRIX, columns=["a", "b", "c"]).astype(dtype)
    frame.loc[3, "b"] = pd.NA
    with pytest.raises(ValueError, match=r"labels has a missing entry \(<NA>\) at row 3, column "
                                         r"'b' \(1 missing in all\); fill every cell with 0 or 1 "
                                         r"\(e.g. labels.fillna\(0\)"):
        encode_multilabels(frame)


def test_a_nan_cell_of_a_float_frame_names_the_row_and_column():
    frame = pd.DataFrame(MATRIX, columns=["a", "b", "c"]).astype(float)
    frame.iloc[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"missing entry \(nan\) at row 1, column 'c'"):
        encode_multilabels(frame)


def test_a_bool_column_among_0_1_columns_reads_as_0_1():
    """Broke: one bool column made DataFrame.to_numpy() give objects ("dtype object")."""
    frame = pd.DataFrame({"a": MATRIX[:, 0], "b": MATRIX[:, 1].astype(bool),
                          "c": MATRIX[:, 2].astype(np.uint8)})
    _same(encode_multilabels(frame), names=["a", "b", "c"])


def test_sparse_and_categorical_0_1_columns_still_read_as_0_1():
    frame = pd.DataFrame(MATRIX, columns=["a", "b", "c"])
    for dtype in (pd.SparseDtype("int64", 0), pd.SparseDtype("bool", False), "category"):
        _same(encode_multilabels(frame.astype(dtype)), names=["a", "b", "c"])


def test_a_text_column_of_a_label_frame_is_named():
    frame = pd.DataFrame({"a": [1, 0], "b": ["yes", "no"]})
    with pytest.raises(TypeError, match=r"labels should be a DataFrame of 0/1 columns, but column "
                                        r"'b' has dtype (object|str); convert it to 0/1 numbers"):
        encode_multilabels(frame)


# ------------------------------------------------------------------ sparse matrices
def _sparse_forms():
    dense = torch.as_tensor(MATRIX)
    forms = {"coo": dense.to_sparse(), "csr": dense.to_sparse_csr(),
             "csc": dense.to_sparse_csc(), "bool-coo": dense.bool().to_sparse(),
             "float-csr": dense.float().to_sparse_csr()}
    sparse = pytest.importorskip("scipy.sparse")
    forms.update({"scipy-csr": sparse.csr_matrix(MATRIX), "scipy-coo": sparse.coo_matrix(MATRIX),
                  "scipy-csc": sparse.csc_matrix(MATRIX)})
    return forms


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("form", ["coo", "csr", "csc", "bool-coo", "float-csr", "scipy-csr",
                                  "scipy-coo", "scipy-csc"])
def test_a_sparse_matrix_reads_as_its_dense_twin(form):
    """Broke: torch sparse tensors failed in .numpy() ("can't convert Sparse layout tensor"),
    scipy matrices were refused as "got csr_matrix"."""
    labels = _sparse_forms()[form]
    _same(encode_multilabels(labels))
    _same(labels_of(TensorDataset(torch.zeros(4)), labels, multilabel=True))
    _same(encode_multilabels(labels, names=["a", "b", "c"]), names=["a", "b", "c"])


def test_a_sparse_matrix_with_explicit_zeros_and_unsorted_entries():
    indices = torch.tensor([[3, 0, 1, 0, 3, 2], [1, 2, 1, 0, 0, 1]])
    values = torch.tensor([1, 1, 1, 1, 1, 0])  # the last one a stored zero: not a positive
    _same(encode_multilabels(torch.sparse_coo_tensor(indices, values, (4, 3), check_invariants=True)))


def test_a_sparse_matrix_holding_other_values_is_refused():
    labels = torch.sparse_coo_tensor(torch.tensor([[2], [1]]), torch.tensor([-1.0]), (4, 3),
                                     check_invariants=True)
    with pytest.raises(ValueError, match=r"labels should hold only 0 and 1, but labels\[2, 1\] = "
                                         r"-1.0; pass a 0/1 \(or boolean\) sparse matrix"):
        encode_multilabels(labels)
    repeated = torch.sparse_coo_tensor(torch.tensor([[0, 0], [1, 1]]), torch.tensor([1, 1]), (2, 2),
                                       check_invariants=True)
    with pytest.raises(ValueError, match=r"labels\[0, 1\] = 2; .*a repeated entry is summed"):
        encode_multilabels(repeated)


def test_a_sparse_tensor_that_is_not_a_matrix_is_refused():
    with pytest.raises(ValueError, match=r"got a 3-D sparse matrix of shape \(2, 2, 2\); pass a "
                                         r"2-D one"):
        encode_multilabels(torch.ones(2, 2, 2).to_sparse())
    with pytest.raises(ValueError, match=r"hybrid sparse tensor \(dense values of shape \(2,\)\)"):
        encode_multilabels(torch.ones(3, 2).to_sparse(1))
    with pytest.raises(ValueError, match=r"labels is empty; pass one row of labels per sample"):
        encode_multilabels(torch.zeros(0, 3).to_sparse())
    with pytest.raises(ValueError, match=r"names has 2 entries but labels has 3 columns"):
        encode_multilabels(torch.as_tensor(MATRIX).to_sparse(), names=["a", "b"])
    with pytest.raises(TypeError, match=r"sparse matrix of 0/1 numbers, but got dtype complex64"):
        encode_multilabels(torch.ones(2, 2, dtype=torch.complex64).to_sparse())


# ------------------------------------------------------------------ missing strings
def test_a_string_series_holding_na_names_the_row():
    """Broke: a pd.NA among strings was called a mix of forms ("item 1 is a NAType"), or, first,
    "multi-label targets are one '|'-joined string ..." (a TypeError)."""
    labels = pd.Series(["A", "B|A", pd.NA, "B"], dtype="string")
    with pytest.raises(ValueError, match=r"labels has a missing entry \(<NA>\) at position 2; "
                                         r"give every sample its findings"):
        encode_multilabels(labels)
    with pytest.raises(ValueError, match=r"labels has a missing entry \(<NA>\) at position 0"):
        encode_multilabels(labels[::-1].reset_index(drop=True).iloc[1:].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"column 'f' of the DataFrame has a missing entry "
                                         r"\(<NA>\) at row 2 \(1 such rows in all\)"):
        labels_of(pd.DataFrame({"f": labels}), "f", multilabel=True)


# ------------------------------------------------------------------ duplicate label names
def test_a_frame_with_a_repeated_column_names_the_column():
    frame = pd.DataFrame(MATRIX, columns=["a", "b", "a"])
    with pytest.raises(ValueError, match=r"labels \(a DataFrame\) holds the column 'a' twice; "
                                         r"give every label its own name"):
        encode_multilabels(frame)


@pytest.mark.parametrize("labels", [MATRIX, ["a", "b|a", "b"], [["a"], ["b"]]])
def test_repeated_names_are_refused_in_every_form(labels):
    with pytest.raises(ValueError, match=r"names holds 'a' twice; give every label its own name"):
        encode_multilabels(labels, names=["a", "a", "b"], require_positives=False)


# ------------------------------------------------------------------ header-only tables
def test_a_header_only_csv_file_says_it_has_no_rows(tmp_path):
    """Broke: a CSV file with a header and no rows gave an empty label array in single-label
    mode (and "column 'f' is empty" in multi-label mode), naming no file."""
    path = tmp_path / "manifest.csv"
    path.write_text("image,f\n")
    for multilabel in (False, True):
        with pytest.raises(ValueError, match=r"CSV file '.*manifest.csv' has no rows, only a header "
                                             r"\(\['image', 'f'\]\); pass a manifest with one row "
                                             r"per item"):
            labels_of(str(path), "f", multilabel=multilabel)
    with pytest.raises(ValueError, match=r"CSV file '.*manifest.csv' has no rows"):
        labels_of(TensorDataset(torch.zeros(3)), (str(path), "f"))


def test_a_dataframe_without_rows_says_so():
    table = pd.DataFrame({"image": [], "f": []})
    for multilabel in (False, True):
        with pytest.raises(ValueError, match=r"the DataFrame has no rows \(only the columns "
                                             r"\['image', 'f'\]\); pass a table with one row per "
                                             r"item"):
            labels_of(table, "f", multilabel=multilabel)


# ------------------------------------------------------------------ arrays of too many dims
def test_a_3d_array_as_single_labels_states_its_shape_and_what_is_expected():
    """Broke: a 3-D array was told "Multi-label targets are not supported", which it is not."""
    for labels in (np.zeros((4, 3, 2), dtype=int), torch.zeros(4, 3, 2, dtype=torch.long)):
        with pytest.raises(ValueError, match=r"labels should be 1-D with one class label per "
                                             r"sample \(shape \(N,\)\), but got a 3-D array of "
                                             r"shape \(4, 3, 2\); pass one class per sample, or "
                                             r"several labels per sample as an \(N, L\) 0/1 "
                                             r"matrix with labels_of\(\.\.\., multilabel=True\)"):
            labels_of(TensorDataset(torch.zeros(4)), labels)


def test_a_3d_array_as_multilabels_states_its_shape_and_what_is_expected():
    for labels in (np.zeros((4, 3, 2), dtype=int), torch.zeros(4, 3, 2)):
        with pytest.raises(ValueError, match=r"labels should be an \(N, L\) 0/1 label matrix \(one "
                                             r"row per sample, one column per label\), but got a "
                                             r"3-D array of shape \(4, 3, 2\); reshape it to "
                                             r"\(N, L\)"):
            labels_of(TensorDataset(torch.zeros(4)), labels, multilabel=True)


# ------------------------------------------------------------------ lists in single-label mode
def test_a_dataframe_column_of_lists_in_single_label_mode_says_pass_multilabel():
    """Broke: TypeError "unhashable type: 'list'", naming nothing."""
    table = pd.DataFrame({"f": [["a"], ["b", "a"], ["b"]]})
    with pytest.raises(ValueError, match=r"column 'f' of the DataFrame holds a list of labels per "
                                         r"row \(\['a'\] at row 0; 3 such rows\): several labels "
                                         r"per item are multi-label targets.*labels_of\(\.\.\., "
                                         r"multilabel=True\), or balance\(loader, "
                                         r"sampler='label-balanced'\)"):
        labels_of(table, "f")
    mixed = pd.DataFrame({"f": ["a", "b", ("a", "b")]})
    with pytest.raises(ValueError, match=r"holds a tuple of labels per row \(\('a', 'b'\) at row "
                                         r"2; 1 such rows\)"):
        labels_of(mixed, "f")
    assert labels_of(table, "f", multilabel=True).labels_per_sample.tolist() == [1, 2, 1]


@pytest.mark.parametrize("labels", [[["a"], ["b", "a"], ["b"]], [["a", "c"], ["b", "a"], ["b", "c"]],
                                    pd.Series([["a"], ["b", "a"], ["b"]])])
def test_lists_of_labels_in_single_label_mode_say_pass_multilabel(labels):
    """Broke: "Multi-label targets are not supported: pass one class per sample", without the
    way to keep them (a Series of lists was even accepted by labels_of)."""
    with pytest.raises(ValueError, match=r"labels_of\(\.\.\., multilabel=True\), or "
                                         r"balance\(loader, sampler='label-balanced'\)"):
        labels_of(TensorDataset(torch.zeros(3)), labels)


# ------------------------------------------------------------------ Hugging Face columns
@pytest.mark.parametrize("multilabel", [False, True])
def test_a_hugging_face_dataset_without_the_column_lists_its_columns(multilabel):
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_dict({"image": [[0.0]] * 3, "fine_label": [0, 1, 1]})
    with pytest.raises(ValueError, match=r"labels='dx' is not a column of the datasets.Dataset; "
                                         r"pick one of \['image', 'fine_label'\]"):
        labels_of(table, "dx", multilabel=multilabel)
    with pytest.raises(ValueError, match=r"the datasets.Dataset has no 'label' or 'labels' column "
                                         r"\(its columns are \['image', 'fine_label'\]\); name the "
                                         r"one holding the class"):
        labels_of(table, multilabel=multilabel)


# ------------------------------------------------------------------ the samplers see the same
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("form", ["coo", "csr", "scipy-csr", "Int64", "boolean", "bool-column"])
def test_the_multilabel_samplers_plan_a_new_form_as_its_dense_twin(form):
    dense = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0], [0, 1, 1], [1, 0, 0]] * 5)
    frame = pd.DataFrame(dense, columns=[0, 1, 2])
    forms = {"coo": torch.as_tensor(dense).to_sparse(),
             "csr": torch.as_tensor(dense).to_sparse_csr(),
             "Int64": frame.astype("Int64"), "boolean": frame.astype("boolean"),
             "bool-column": frame.astype({1: bool})}
    if form == "scipy-csr":
        forms[form] = pytest.importorskip("scipy.sparse").csr_matrix(dense)
    for sampler in (MultiLabelBalancedSampler, RepeatFactorSampler):
        for epoch in (0, 1):
            want, got = sampler(dense, 4, seed=3), sampler(forms[form], 4, seed=3)
            want.set_epoch(epoch), got.set_epoch(epoch)
            assert list(got) == list(want)


def test_a_string_series_holding_na_names_its_position_in_single_label_mode():
    labels = pd.Series(["a", "b", pd.NA, "a"], dtype="string")
    with pytest.raises(ValueError, match=r"labels has a missing label \(<NA>\) at position 2 "
                                         r"\(1 missing in all\); remove those samples or give them "
                                         r"a class"):
        encode_labels(labels_of(pd.DataFrame({"f": labels}), "f"))
