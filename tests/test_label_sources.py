"""Every label source works in both modes: one class per item and a set of labels per item.

Each source is built twice from the same truth (``CLASSES`` for single-label mode, ``SETS`` for
multi-label mode); ``labels_of`` must give each item's truth back, in index order, without
reading an item (except ``labels="scan"``) or running a MONAI transform.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from balancer import balance, labels_of
from balancer.labels import MultiLabels, encode_labels, multilabels_of

CLASSES = [2, 0, 1, 1, 0, 2, 1, 2]
NAMES = ["a", "b", "c"]
SETS = [{"a", "b"}, {"b"}, set(), {"a"}, {"c"}, {"a", "c"}, {"b", "c"}, {"a", "b", "c"}]
N = len(CLASSES)
HAS_MONAI = importlib.util.find_spec("monai") is not None
HAS_DATASETS = importlib.util.find_spec("datasets") is not None


def as_strings(multilabel):
    """Per item: its class (single) or its findings joined with '|' (multi)."""
    if not multilabel:
        return list(CLASSES)
    return ["|".join(sorted(s)) if s else "No Finding" for s in SETS]


def as_lists(multilabel):
    """Per item: its class (single) or the list of its label names (multi)."""
    return list(CLASSES) if not multilabel else [sorted(s) for s in SETS]


def as_matrix(multilabel):
    """One class per item (single) or the (N, L) 0/1 matrix, column j being NAMES[j] (multi)."""
    if not multilabel:
        return np.asarray(CLASSES)
    return np.array([[name in s for name in NAMES] for s in SETS], dtype=np.int64)


def as_rows(multilabel, kind):
    """Per item: its class (single) or its 0/1 row as a numpy array or tensor (multi)."""
    if not multilabel:
        return list(CLASSES)
    return [kind(row) for row in as_matrix(True)]


class Untouchable(Dataset):
    """A dataset whose items must not be read; its labels live in the given attributes."""

    def __init__(self, length=N, **attributes):
        self._length = length
        for name, value in attributes.items():
            setattr(self, name, value)

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        raise AssertionError(f"labels_of read item {index}")


class Items(Dataset):
    """A dataset whose items are (input, label) pairs or dicts, read only by labels="scan"."""

    def __init__(self, labels, as_dict):
        self.labels, self.as_dict = labels, as_dict

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = torch.zeros(2)
        return {"image": image, "label": self.labels[index]} if self.as_dict else \
            (image, self.labels[index])


class Counting:
    """A MONAI transform that counts its calls: labels_of must run none."""

    calls = 0

    def __call__(self, item):
        Counting.calls += 1
        return item


def records(values, key="label"):
    return [{"image": f"{i}.nii.gz", key: value, "id": i} for i, value in enumerate(values)]


# --------------------------------------------------------------------- sources
# Each builds (dataset, labels argument, the truth's index of every item) for one mode.
def explicit(m, tmp_path):
    return Untouchable(), as_matrix(m), range(N)


def attribute(name):
    def build(m, tmp_path):
        return Untouchable(**{name: as_matrix(m)}), None, range(N)
    return build


def tensor_attribute(m, tmp_path):
    return Untouchable(targets=torch.as_tensor(as_matrix(m))), None, range(N)


def pairs(name):
    def build(m, tmp_path):
        return Untouchable(**{name: [(f"{i}.png", v) for i, v in enumerate(as_lists(m))]}), \
            None, range(N)
    return build


def named_attribute(m, tmp_path):
    return Untouchable(diagnoses=as_strings(m)), "diagnoses", range(N)


def nested_subset(m, tmp_path):
    inner = Subset(Untouchable(targets=as_matrix(m)), [7, 6, 5, 4, 3, 2])
    return Subset(inner, torch.tensor([5, 0, 2])), None, [2, 7, 5]


def concat_of_subsets(m, tmp_path):
    base = Untouchable(targets=as_strings(m))  # multi: names a, b, c; the pairs' a, c
    pairs_part = Untouchable(length=2, samples=[("x.png", v) for v in as_lists(m)[3:5]])
    return ConcatDataset([Subset(base, [1, 0]), pairs_part, Subset(Subset(base, [6, 7]), [1])]), \
        None, [1, 0, 3, 4, 7]


def dataframe(m, tmp_path):
    return pd.DataFrame({"image": range(N), "dx": as_strings(m)}), "dx", range(N)


def csv_path(m, tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"image": range(N), "dx": as_strings(m)}).to_csv(path, index=False)
    return str(path), "dx", range(N)


def tsv_path(m, tmp_path):
    path = tmp_path / "manifest.tsv"
    pd.DataFrame({"image": range(N), "dx": as_strings(m)}).to_csv(path, index=False, sep="\t")
    return path, "dx", range(N)


def table_next_to_dataset(m, tmp_path):
    table = pd.DataFrame({"dx": as_strings(m)})
    return Untouchable(), (table, "dx"), range(N)


def table_held_by_dataset(m, tmp_path):
    return Subset(Untouchable(table=pd.DataFrame({"dx": as_strings(m)})), [4, 1]), "dx", [4, 1]


def list_of_dicts(m, tmp_path):
    return records(as_lists(m), key="findings"), "findings", range(N)


def label_function(m, tmp_path):
    values = as_lists(m)
    return Untouchable(), lambda index: values[index], range(N)


def scan_tuples(m, tmp_path):
    return Items(as_rows(m, torch.as_tensor), as_dict=False), "scan", range(N)


def scan_dicts(m, tmp_path):
    return Items(as_lists(m), as_dict=True), "scan", range(N)


def hugging_face(column, labels):
    def build(m, tmp_path):
        datasets = pytest.importorskip("datasets")
        table = datasets.Dataset.from_dict({"image": [[0.0] * 4] * N, column: as_lists(m)})
        view = table.select([6, 2, 3])
        return view, labels, [6, 2, 3]
    return build


def monai_dataset(kind, key="label", labels=None):
    """A MONAI dataset over a data list whose ``key`` holds each item's labels; the truth's
    order is read back from the items afterwards (SmartCacheDataset shuffles and windows)."""
    def build(m, tmp_path):
        monai_data = pytest.importorskip("monai.data")
        values = {"Dataset": as_rows(m, np.asarray), "CacheDataset": as_strings(m),
                  "PersistentDataset": as_lists(m),
                  "SmartCacheDataset": as_rows(m, torch.as_tensor)}[kind]
        data, transform = records(values, key=key), Counting()
        if kind == "Dataset":
            dataset = monai_data.Dataset(data=data, transform=transform)
        elif kind == "CacheDataset":
            dataset = monai_data.CacheDataset(data=data, transform=transform, cache_rate=0.0,
                                              progress=False)
        elif kind == "PersistentDataset":
            dataset = monai_data.PersistentDataset(data=data, transform=transform,
                                                   cache_dir=tmp_path / "cache")
        else:
            dataset = monai_data.SmartCacheDataset(data=data, transform=transform, cache_num=5,
                                                   replace_rate=0.4, progress=False, seed=3)
        return dataset, labels, None
    return build


def monai_image_dataset(m, tmp_path):
    monai_data = pytest.importorskip("monai.data")
    return monai_data.ImageDataset(image_files=[f"{i}.nii.gz" for i in range(N)],
                                   labels=as_matrix(m)), None, range(N)


MONAI = pytest.mark.skipif(not HAS_MONAI, reason="monai is not installed (pip install .[monai])")
HF = pytest.mark.skipif(not HAS_DATASETS, reason="datasets is not installed (pip install .[hf])")
SOURCES = [
    pytest.param(explicit, id="explicit-sequence"),
    *(pytest.param(attribute(name), id=f"attribute-{name}") for name in ("targets", "labels", "y")),
    pytest.param(tensor_attribute, id="attribute-tensor"),
    *(pytest.param(pairs(name), id=f"pairs-{name}") for name in ("samples", "imgs")),
    pytest.param(named_attribute, id="named-attribute"),
    pytest.param(nested_subset, id="nested-subset"),
    pytest.param(concat_of_subsets, id="concat-of-subsets"),
    pytest.param(dataframe, id="dataframe-column"),
    pytest.param(csv_path, id="csv-column"),
    pytest.param(tsv_path, id="tsv-column"),
    pytest.param(table_next_to_dataset, id="table-next-to-dataset"),
    pytest.param(table_held_by_dataset, id="table-held-by-subset-dataset"),
    pytest.param(list_of_dicts, id="list-of-dicts-key"),
    pytest.param(label_function, id="label-function"),
    pytest.param(scan_tuples, id="scan-tuples"),
    pytest.param(scan_dicts, id="scan-dicts"),
    pytest.param(hugging_face("label", None), id="hf-default-column", marks=HF),
    pytest.param(hugging_face("findings", "findings"), id="hf-named-column", marks=HF),
    *(pytest.param(monai_dataset(kind), id=f"monai-{kind}", marks=MONAI) for kind in (
        "Dataset", "CacheDataset", "PersistentDataset", "SmartCacheDataset")),
    pytest.param(monai_dataset("CacheDataset", key="dx", labels="dx"), id="monai-named-key",
                 marks=MONAI),
    pytest.param(monai_image_dataset, id="monai-ImageDataset", marks=MONAI),
]


def rows_of(found):
    """Per item: its class, or its set of label names (column numbers read as NAMES)."""
    if not isinstance(found, MultiLabels):
        assert isinstance(found, np.ndarray) and found.ndim == 1
        return found.tolist()
    names = [NAMES[n] if isinstance(n, (int, np.integer)) else str(n) for n in found.names]
    return [{names[k] for k in found.indices[found.indptr[i]:found.indptr[i + 1]]}
            for i in range(found.num_samples)]


@pytest.mark.parametrize("multilabel", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("source", SOURCES)
def test_every_source_in_both_modes(source, multilabel, tmp_path):
    dataset, labels, order = source(multilabel, tmp_path)
    calls = Counting.calls
    found = labels_of(dataset, labels, multilabel=multilabel)
    assert Counting.calls == calls  # no MONAI transform ran
    if order is None:  # a MONAI dataset: which entry of the data list each item is
        order = [dataset[i]["id"] for i in range(len(dataset))]
    truth = CLASSES if not multilabel else SETS
    assert rows_of(found) == [truth[i] for i in order]
    assert len(found) == len(order)


@pytest.mark.skipif(not HAS_MONAI, reason="monai is not installed")
def test_a_smart_cache_window_is_followed_as_it_moves():
    from monai.data import SmartCacheDataset

    data = records(CLASSES)
    dataset = SmartCacheDataset(data=data, transform=None, cache_num=5, replace_rate=0.4,
                                progress=False, seed=0)
    dataset.start()
    try:
        for _ in range(3):
            assert labels_of(dataset).tolist() == [dataset[i]["label"] for i in range(5)]
            dataset.update_cache()
    finally:
        dataset.shutdown()


@pytest.mark.parametrize("multilabel", [False, True], ids=["single", "multi"])
def test_balance_of_a_subset(multilabel):
    base = TensorDataset(torch.arange(N))
    base.targets = as_matrix(multilabel)
    loader = DataLoader(Subset(base, [0, 1, 3, 4, 5, 6, 7]), batch_size=4)
    balanced = balance(loader, sampler="label-balanced" if multilabel else "balanced", seed=0)
    drawn = [index for (batch,) in balanced for index in batch.tolist()]
    assert drawn and set(drawn) <= {0, 1, 3, 4, 5, 6, 7}


def test_a_scan_of_one_class_per_item_gives_one_label_sets():
    # balance(loader, "scan", sampler="repeat-factor") on single-label data: 0-d tensors.
    dataset = Items([torch.tensor(c) for c in CLASSES], as_dict=False)
    found = multilabels_of(dataset, "scan", classes=True)
    assert found.names.tolist() == [0, 1, 2]
    assert found.dense(np.int64).argmax(axis=1).tolist() == CLASSES
    assert found.labels_per_sample.tolist() == [1] * N


def test_monai_and_datasets_are_never_imported_for_other_sources():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import torch
        from torch.utils.data import Subset, TensorDataset
        import balancer
        dataset = TensorDataset(torch.zeros(4))
        dataset.targets = np.array([0, 1, 0, 1])
        balancer.labels_of(Subset(dataset, [0, 1]))
        balancer.labels_of(dataset, [["a"], ["b"], [], ["a", "b"]], multilabel=True)
        print(sorted(name for name in ("monai", "datasets") if name in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------- tables: one rule
@pytest.mark.parametrize("source", ["csv", "dataframe"])
def test_an_empty_cell_is_a_missing_entry_in_both_modes(tmp_path, source):
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"dx": ["a", "", "b", "a|b"]}).to_csv(path, index=False)
    table = str(path) if source == "csv" else pd.read_csv(path)
    with pytest.raises(ValueError, match=r"column 'dx' of .* has (an empty cell|a missing entry "
                                         r"\(nan\)) at row 1 .*give every row its findings"):
        labels_of(table, "dx", multilabel=True)
    pd.DataFrame({"dx": ["a", "", "b"]}).to_csv(path, index=False)
    table = str(path) if source == "csv" else pd.read_csv(path)
    single = labels_of(table, "dx")
    assert pd.isna(single[1])  # kept, so that the encoding names it
    with pytest.raises(ValueError, match=r"labels has a missing label \(nan\) at position 1"):
        encode_labels(single)


def test_csv_text_other_than_an_empty_cell_is_a_label_as_written(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"dx": ["NA", "nv", "NA", "mel"]}).to_csv(path, index=False)
    assert labels_of(path, "dx").tolist() == ["NA", "nv", "NA", "mel"]
    assert labels_of(path, "dx", multilabel=True).names.tolist() == ["NA", "mel", "nv"]


# ---------------------------------------------------------------------- errors
def test_the_error_names_the_mode_and_lists_the_monai_data_list():
    with pytest.raises(ValueError, match=r"(?s)found no multi-label targets on dataset of "
                                         r"type Untouchable.*a `data` list of dicts with a \"label\""):
        labels_of(Untouchable(), multilabel=True)


def test_rows_of_different_lengths_are_refused_naming_the_item():
    rows = [np.array([1, 0]), np.array([0, 1]), np.array([1, 0, 1])]
    with pytest.raises(ValueError, match=r"key 'label'\[2\] is ndarray of shape \(3,\), but "
                                         r"key 'label'\[0\] is a 0/1 row of shape \(2,\)"):
        labels_of(records(rows), "label", multilabel=True)


def test_a_dataframe_column_of_indicator_arrays_is_a_matrix():
    frame = pd.DataFrame({"rows": as_rows(True, np.asarray)})
    assert rows_of(labels_of(frame, "rows", multilabel=True)) == SETS


def test_concat_of_parts_with_different_names_takes_the_union():
    first = Untouchable(length=2, findings=["a|b", "b"])
    second = Untouchable(length=2, findings=["c", "No Finding"])
    found = labels_of(ConcatDataset([first, second]), "findings", multilabel=True)
    assert found.names.tolist() == ["a", "b", "c"]
    assert rows_of(found) == [{"a", "b"}, {"b"}, {"c"}, set()]
