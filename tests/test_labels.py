"""labels_of: every label source, never touching items unless asked, and every error path."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset, TensorDataset

from balancer import MedMNIST, labels_of

LABELS = np.array([2, 0, 1, 1, 0, 2, 2, 0, 1, 2])
N = len(LABELS)


class Untouchable(Dataset):
    """A dataset whose items must not be read; it carries labels only in the given attributes."""

    def __init__(self, length=N, **attributes):
        self._length = length
        for name, value in attributes.items():
            setattr(self, name, value)

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        raise AssertionError(f"labels_of read item {index}")


class Items(Dataset):
    """A dataset that returns items built by ``make(index)`` and counts the reads."""

    def __init__(self, make, length=N):
        self.make, self.length, self.reads = make, length, 0

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        self.reads += 1
        return self.make(index)


@pytest.mark.parametrize("name", ["targets", "labels", "y"])
@pytest.mark.parametrize("form", [list, np.asarray, torch.tensor, pd.Series,
                                  lambda v: np.asarray(v)[:, None]])
def test_label_attributes(name, form):
    dataset = Untouchable(**{name: form(LABELS.tolist())})
    result = labels_of(dataset)
    assert isinstance(result, np.ndarray) and result.shape == (len(LABELS),)
    assert result.tolist() == LABELS.tolist()


def test_attribute_order_and_wrong_length_attributes_are_skipped():
    # `targets` comes first; a `labels` attribute of class names (wrong length) is not used.
    dataset = Untouchable(targets=LABELS, labels=["cat", "dog"])
    assert labels_of(dataset).tolist() == LABELS.tolist()
    dataset = Untouchable(labels=["cat", "dog", "bird"], y=LABELS)
    assert labels_of(dataset).tolist() == LABELS.tolist()


@pytest.mark.parametrize("name", ["samples", "imgs"])
def test_image_folder_pairs(name):
    pairs = [(f"/data/{i}.png", int(c)) for i, c in enumerate(LABELS)]
    assert labels_of(Untouchable(**{name: pairs})).tolist() == LABELS.tolist()


def test_medmnist_reads_the_labels_attribute():
    train = MedMNIST("pneumoniamnist", "train")
    assert np.array_equal(labels_of(train), train.labels)


def test_subsets_nested_and_concat():
    base = Untouchable(targets=LABELS)
    inner = Subset(base, [9, 8, 7, 6, 5, 4])
    outer = Subset(inner, torch.tensor([5, 0, 2]))  # base indices 4, 9, 7
    assert labels_of(outer).tolist() == LABELS[[4, 9, 7]].tolist()
    other = Untouchable(length=3, samples=[("a", 5), ("b", 6), ("c", 5)])
    concat = ConcatDataset([outer, other, Subset(base, [1])])
    assert labels_of(concat).tolist() == [*LABELS[[4, 9, 7]].tolist(), 5, 6, 5, LABELS[1]]


def test_concat_of_strings_and_ints_keeps_both():
    concat = ConcatDataset([Untouchable(length=2, targets=["a", "b"]),
                            Untouchable(length=2, targets=[1, 2])])
    assert labels_of(concat).tolist() == ["a", "b", 1, 2]


@pytest.mark.parametrize("form", [list, tuple, np.asarray, torch.tensor, pd.Series])
def test_explicit_sequence_overrides_attributes(form):
    dataset = Untouchable(targets=np.zeros(len(LABELS), dtype=int))
    assert labels_of(dataset, form(LABELS.tolist())).tolist() == LABELS.tolist()


def test_dataframe_and_column():
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(10)],
                          "dx": ["nv", "mel", "nv", "bcc", "nv", "nv", "mel", "nv", "bcc", "nv"]})
    assert labels_of(frame, "dx").tolist() == frame["dx"].tolist()
    # The same table next to a dataset, given explicitly or found among its attributes.
    assert labels_of(Untouchable(), (frame, "dx")).tolist() == frame["dx"].tolist()
    assert labels_of(Untouchable(table=frame), "dx").tolist() == frame["dx"].tolist()
    assert labels_of(Subset(Untouchable(table=frame), [1, 3]), "dx").tolist() == ["mel", "bcc"]


def test_csv_path_and_column(tmp_path):
    path = tmp_path / "manifest.csv"
    frame = pd.DataFrame({"image": [f"{i}.png" for i in range(10)], "dx": LABELS * 10})
    frame.to_csv(path, index=False)
    for source in (path, str(path)):
        assert labels_of(source, "dx").tolist() == (LABELS * 10).tolist()
        assert labels_of(Untouchable(), (source, "dx")).tolist() == (LABELS * 10).tolist()
    assert labels_of(path, "dx").dtype.kind == "i"  # numbers stay numbers
    assert labels_of(path, "image").tolist() == frame["image"].tolist()
    tsv = tmp_path / "manifest.tsv"
    frame.to_csv(tsv, index=False, sep="\t")
    assert labels_of(tsv, "dx").tolist() == (LABELS * 10).tolist()


def test_list_of_dicts_and_key():
    records = [{"image": f"{i}.nii.gz", "label": int(c)} for i, c in enumerate(LABELS)]
    assert labels_of(records, "label").tolist() == LABELS.tolist()
    assert labels_of(Untouchable(), (records, "label")).tolist() == LABELS.tolist()

    class MonaiStyle(Untouchable):
        def __init__(self, data):
            super().__init__(length=len(data))
            self.data = data

    assert labels_of(MonaiStyle(records), "label").tolist() == LABELS.tolist()


def test_label_function_gets_every_index():
    calls = []

    def label_fn(index):
        calls.append(index)
        return int(LABELS[index])

    assert labels_of(Untouchable(), label_fn).tolist() == LABELS.tolist()
    assert calls == list(range(len(LABELS)))


@pytest.mark.parametrize("make, expected", [
    (lambda i: (torch.zeros(2), int(LABELS[i])), LABELS.tolist()),
    (lambda i: (torch.zeros(2), torch.tensor(LABELS[i])), LABELS.tolist()),
    (lambda i: [np.zeros(2), np.array([LABELS[i]]), "meta"], LABELS.tolist()),
    (lambda i: {"image": torch.zeros(2), "label": str(LABELS[i])}, [str(c) for c in LABELS]),
])
def test_scan_reads_every_item_once_and_reports_time(make, expected, capsys):
    dataset = Items(make)
    assert labels_of(dataset, "scan").tolist() == expected
    assert dataset.reads == len(LABELS)
    err = capsys.readouterr().err
    assert re.search(rf"read {len(LABELS)} items in \d+\.\d\d s", err)
    assert "scanning items" in err  # the tqdm bar


def test_scan_is_never_implicit():
    dataset = Items(lambda i: (0, int(LABELS[i])))
    with pytest.raises(ValueError, match="found no class labels"):
        labels_of(dataset)
    assert dataset.reads == 0


# ---------------------------------------------------------------------- errors
def test_tensor_dataset_error_points_at_its_label_tensor():
    features, labels = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    dataset = TensorDataset(features, labels)
    with pytest.raises(ValueError, match=r"For a TensorDataset of 2 tensors whose labels are the "
                                         r"last one, pass labels=dataset.tensors\[-1\]"):
        labels_of(dataset)
    assert labels_of(dataset, dataset.tensors[-1]).tolist() == labels.tolist()
    with pytest.raises(ValueError, match="found no class labels") as info:
        labels_of(TensorDataset(features))  # one tensor: nothing to point at
    assert "TensorDataset of" not in str(info.value)


def test_nothing_applies_lists_every_option():
    with pytest.raises(ValueError, match="found no class labels on dataset of type Untouchable") \
            as info:
        labels_of(Untouchable())
    message = str(info.value)
    for option in ("labels=<sequence>", "`targets`, `labels` or `y`", "`samples` or `imgs`",
                   "Subset / ConcatDataset", 'labels_of("manifest.csv", "dx")', "list of dicts",
                   "label_fn(index)", 'labels="scan"'):
        assert option in message


def test_unusable_attributes_are_named_in_the_error():
    with pytest.raises(ValueError, match=r"could not use: `labels` \(dataset.labels has 2 entries "
                                         r"but the dataset has 10 items"):
        labels_of(Untouchable(labels=["cat", "dog"]))
    with pytest.raises(ValueError, match=r"`targets` \(.*Multi-label"):
        labels_of(Untouchable(targets=np.zeros((10, 3))))


@pytest.mark.parametrize("labels, error, match", [
    (LABELS[:-1], ValueError, "labels has 9 entries but the dataset has 10 items; pass exactly "
                              "one label per item"),
    (np.zeros((10, 4)), ValueError, r"shape \(10, 4\): 4 labels per sample\. Multi-label targets "
                                    r"are not supported .*labels_of\(\.\.\., multilabel=True\)"),
    (pd.DataFrame({"dx": LABELS}), TypeError, r"pass labels=\(df, 'column'\) or labels=df\['column'\]"),
    ("dx", ValueError, "labels='dx' names a column or key, but dataset of type Untouchable"),
    (5, TypeError, "should be a 1-D sequence of labels"),
    ([[0, 1], [1]], ValueError, r"ragged nested sequence \(a list of labels per sample\)\. "
                                r"Multi-label targets are not supported .*sampler='label-balanced'"),
    ((pd.DataFrame({"dx": LABELS[:3]}), "dx"), ValueError, "gives 3 labels but the dataset has 10"),
])
def test_bad_labels(labels, error, match):
    with pytest.raises(error, match=match):
        labels_of(Untouchable(), labels)


def test_table_errors(tmp_path):
    frame = pd.DataFrame({"path": ["a", "b", "c"], "dx": ["mel", "nv", "nv"]})
    with pytest.raises(ValueError, match=r"column 'label' is not in the DataFrame; pick one of "
                                         r"\['path', 'dx'\]"):
        labels_of(frame, "label")
    with pytest.raises(ValueError, match=r"dataset is a DataFrame; name the column .* its columns "
                                         r"are \['path', 'dx'\]"):
        labels_of(frame)
    path = tmp_path / "m.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'label' is not in .*m.csv'; pick one of "
                                         r"\['path', 'dx'\]"):
        labels_of(path, "label")
    with pytest.raises(FileNotFoundError, match="CSV file .*missing.csv' does not exist"):
        labels_of(str(tmp_path / "missing.csv"), "dx")
    with pytest.raises(ValueError, match="dataset is a CSV file; name the column"):
        labels_of(path)
    records = [{"label": 0}, {"label": 1}, {"target": 1}]
    with pytest.raises(ValueError, match=r"key 'label' is missing from item 2 .*\['target'\]"):
        labels_of(records, "label")
    with pytest.raises(ValueError, match=r"dataset is a list of dicts; .*keys \['label'\]"):
        labels_of(records)
    holder = Untouchable(length=3, a=frame, b=frame)
    with pytest.raises(ValueError, match=r"several attributes have it \(a, b\)"):
        labels_of(holder, "dx")


def test_multi_label_findings_column_is_rejected_with_the_fix(tmp_path):
    path = tmp_path / "Data_Entry.csv"
    pd.DataFrame({"Image Index": ["1.png", "2.png", "3.png", "4.png"],
                  "Finding Labels": ["No Finding", "Effusion|Mass", "Mass", "Atelectasis|Mass"]}
                 ).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"'Finding Labels' of .* is multi-label: 'Effusion\|Mass' "
                                         r"at row 1 .*\(2 such rows\).*pass a primary finding, "
                                         r"e\.g\. labels=df\['Finding Labels'\]\.str\.split"):
        labels_of(path, "Finding Labels")
    # The suggested fix works.
    frame = pd.read_csv(path)
    primary = frame["Finding Labels"].str.split("|").str[0]
    assert labels_of(Untouchable(length=4), primary).tolist() == [
        "No Finding", "Effusion", "Mass", "Atelectasis"]


@pytest.mark.parametrize("make, match", [
    (lambda i: torch.zeros(3), "item 0 is a Tensor, not an .input, label, .... tuple"),
    (lambda i: {"image": 0}, r"item 0 is a dict without any of the keys .* \['image'\]"),
    (lambda i: (0, torch.tensor([1, 0, 1])), r"label has shape \(3,\); multi-label"),
])
def test_scan_errors(make, match):
    with pytest.raises(ValueError, match=match):
        labels_of(Items(make), "scan")


def test_scan_and_function_need_a_length():
    class Unsized:
        def __getitem__(self, index):
            return 0, 1

    with pytest.raises(TypeError, match="labels='scan' .* has no len"):
        labels_of(Unsized(), "scan")
    with pytest.raises(TypeError, match="labels=label_fn needs a dataset with len"):
        labels_of(Unsized(), lambda i: 0)


@pytest.mark.parametrize("text, expected", [
    (["1", "1.0", "2"], ["1", "1.0", "2"]),      # distinct strings stay distinct
    (["007", "010", "7"], ["007", "010", "7"]),  # leading zeros are part of the class name
    (["3", "-1", "3"], [3, -1, 3]),              # integers written plainly become integers
])
def test_csv_labels_that_only_look_numeric_stay_distinct(tmp_path, text, expected):
    path = tmp_path / "manifest.csv"
    path.write_text("image,dx\n" + "".join(f"{i}.png,{v}\n" for i, v in enumerate(text)))
    labels = labels_of(path, "dx")
    assert labels.tolist() == expected
    assert len(set(labels.tolist())) == len(set(text))


def test_csv_missing_labels_are_still_detected(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("image,dx\na.png,1\nb.png,\nc.png,2\n")
    labels = labels_of(path, "dx")
    assert pd.isna(labels[1]) and labels[0] == 1 and labels[2] == 2


@pytest.mark.parametrize("name", ["labels", "targets", "diagnoses"])
def test_a_string_can_name_the_label_attribute(name):
    dataset = Untouchable(**{name: LABELS.tolist()})
    assert labels_of(dataset, name).tolist() == LABELS.tolist()
    assert labels_of(Subset(dataset, [0, 2]), name).tolist() == [2, 1]


def test_a_named_attribute_that_is_not_one_label_per_item_is_refused():
    with pytest.raises(ValueError, match=r"labels='diagnoses' names the attribute "
                                         r"dataset\.diagnoses, but dataset\.diagnoses has 2 "
                                         r"entries but the dataset has 10 items"):
        labels_of(Untouchable(diagnoses=["nv", "mel"]), "diagnoses")
    with pytest.raises(ValueError, match=r"labels='dx' names a column or key, but dataset of "
                                         r"type Untouchable is not a table, has no attribute "
                                         r"'dx' and none of its attributes .*\n  - labels=<seq"):
        labels_of(Untouchable(diagnoses=LABELS), "dx")


def test_an_error_in_label_fn_names_the_index_and_the_function():
    def label_of_item(index):
        return 1 // (index - 3)

    with pytest.raises(RuntimeError, match=r"label_fn label_of_item\(index\) raised "
                                           r"ZeroDivisionError at index 3 of 10: integer division "
                                           r"or modulo by zero; fix the function for that item") \
            as info:
        labels_of(Untouchable(), label_of_item)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
