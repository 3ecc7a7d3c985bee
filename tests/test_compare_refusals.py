"""compare() refuses, before any training, what it would otherwise train on wrongly or fail on
late (issue 21): NaN or fractional labels, NaN or infinite features, a model whose input width
does not match the data, and seeds that are not a non-empty sequence of integers >= 0."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

import balancer.study._train as study_train
from balancer.study import compare


def _split(n, seed, labels=None):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=generator)
    y = torch.arange(n) % 2 if labels is None else labels
    return TensorDataset(X, y)


def _datasets():
    return _split(40, 0), _split(20, 1), _split(20, 2)


def model_fn(num_classes):
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, num_classes))


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """Every refusal here must come before training: a call that reaches train_run fails."""
    def refuse(*args, **kwargs):
        raise AssertionError("compare() started training")
    monkeypatch.setattr(study_train, "train_run", refuse)


def _compare(train, val, test, fn=model_fn, **kwargs):
    return compare(train, val, test, fn, **{"seeds": (0,), "epochs": 1, "batch_size": 8,
                                            **kwargs})


@pytest.mark.parametrize("values, match", [
    ([0.5, 1.5], r"labels of val: 20 label\(s\) are not whole numbers \(e\.g\. 0\.5 at index 0\)"),
    ([0.0, float("nan")], r"labels of val: 10 label\(s\) are NaN or infinite \(at index 1, 3, "),
])
def test_nan_and_fractional_labels_are_refused_naming_split_and_position(values, match):
    """Before: the labels became classes '0.5', '1.5' or 'nan' and the study trained on them."""
    train, _, test = _datasets()
    labels = torch.tensor(values * 10, dtype=torch.float64)
    val = _split(20, 1, labels)
    with pytest.raises(ValueError, match=match):
        _compare(train, val, test)


def test_whole_float_labels_are_the_integer_classes():
    train, val, test = (_split(n, s, (torch.arange(n) % 2).double()) for n, s in
                        ((40, 0), (20, 1), (20, 2)))
    with pytest.raises(AssertionError, match="started training"):  # accepted up to training
        _compare(train, val, test)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nan_or_infinite_feature_is_refused_naming_split_and_row(bad):
    """Before: the run trained, then scikit-learn failed with 'Input contains NaN'."""
    train, val, test = _datasets()
    test.tensors[0][7, 2] = bad
    with pytest.raises(ValueError, match=r"compare\(\): the test split's inputs: X has NaN or "
                                         r"infinite values in 1 row\(s\) \(e\.g\. 7\)"):
        _compare(train, val, test)


def test_a_nan_feature_is_found_through_a_subset_at_its_position_in_the_split():
    train, _, test = _datasets()
    whole = _split(60, 3)
    whole.tensors[0][50, 0] = float("nan")
    with pytest.raises(ValueError, match=r"the val split's inputs: X has NaN or infinite values "
                                         r"in 1 row\(s\) \(e\.g\. 2\)"):
        _compare(train, Subset(whole, [10, 21, 50, 31]), test)


class Items(Dataset):
    """A dataset that is not a TensorDataset: compare() sees its probe item only."""

    def __init__(self, X, y):
        self.X, self.targets = X, y.tolist()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.X[i], self.targets[i]


def test_a_nan_feature_in_the_probe_item_of_another_dataset_is_refused():
    train, val, test = _datasets()
    X = train.tensors[0].clone()
    X[0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"the train split's inputs have NaN or infinite values "
                                         r"in row 0"):
        _compare(Items(X, train.tensors[1]), val, test)


def test_a_model_of_another_input_width_is_refused_naming_model_fn_and_both_shapes():
    """Before: torch's 'mat1 and mat2 shapes cannot be multiplied' from inside the first step."""
    train, val, test = _datasets()

    def wide(num_classes):
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, num_classes))

    with pytest.raises(ValueError, match=r"model_fn\(2\)'s model cannot take the data's inputs: a "
                                         r"batch of inputs has shape \(1, 4\), but the model "
                                         r"expects \(batch, 6\)"):
        _compare(train, val, test, wide)


@pytest.mark.parametrize("seeds, error, match", [
    (0, TypeError, r"seeds should be a sequence of integers >= 0, but got seeds=0 of type int; "
                   r"pass e\.g\. seeds=\(0, 1, 2\)"),
    ("012", TypeError, r"seeds should be a sequence of integers >= 0, but got seeds='012'"),
    ((), ValueError, r"seeds=\(\) is empty; pass at least one seed"),
    ([0, -1], ValueError, r"seeds should be an integer >= 0, but got seeds=-1"),
    ([0, 1.5], TypeError, r"seeds should be an integer, but got seeds=1\.5"),
])
def test_seeds_that_are_not_a_nonempty_sequence_of_integers_are_refused(seeds, error, match):
    train, val, test = _datasets()
    with pytest.raises(error, match=match):
        _compare(train, val, test, seeds=seeds)


def test_labels_positions_are_counted_within_the_split():
    labels = np.array([0, 1] * 10, dtype=np.float32)
    labels[13] = 0.25
    train, _, test = _datasets()
    with pytest.raises(ValueError, match=r"labels of val: 1 label\(s\) are not whole numbers "
                                         r"\(e\.g\. 0\.25 at index 13\)"):
        _compare(train, _split(20, 1, torch.from_numpy(labels)), test)


def test_seeds_as_a_generator_is_refused_rather_than_emptied():
    train, val, test = _datasets()
    with pytest.raises(TypeError, match=r"seeds should be a sequence of integers >= 0, but got "
                                        r"seeds=<generator"):
        _compare(train, val, test, seeds=(s for s in (0, 1)))
