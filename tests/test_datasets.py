import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, StackDataset, Subset, default_collate

from balancer import SHIPPED_DATASETS, FineTuneSchedule, MedMNIST, balance, load_medmnist
from balancer.transforms import RandomFlipShift

# Train-split class counts of the shipped files, from their official release.
TRAIN_COUNTS = {
    "breastmnist": [147, 399],
    "pneumoniamnist": [1214, 3494],
    "retinamnist": [486, 128, 206, 194, 66],
}


@pytest.mark.parametrize("name", SHIPPED_DATASETS)
def test_shipped_train_counts(name):
    images, labels = load_medmnist(name, "train")
    assert labels.ndim == 1 and labels.dtype == np.int64
    assert len(images) == len(labels)
    assert np.bincount(labels).tolist() == TRAIN_COUNTS[name]


def test_dataset_items_and_labels_attribute():
    ds = MedMNIST("retinamnist", "val")
    image, label = ds[3]
    assert image.shape == (3, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert label == int(ds.labels[3])
    assert ds.num_classes == 5
    grey = MedMNIST("breastmnist", "test")
    assert grey[0][0].shape == (1, 28, 28)


def test_load_from_path(tmp_path):
    path = tmp_path / "mini.npz"
    np.savez(path, train_images=np.zeros((4, 28, 28), np.uint8),
             train_labels=np.array([[0], [1], [1], [2]], np.uint8))
    _images, labels = load_medmnist(path, "train")
    assert labels.tolist() == [0, 1, 1, 2]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="split should be one of"):
        load_medmnist("breastmnist", "training")
    with pytest.raises(FileNotFoundError, match="neither a shipped dataset"):
        load_medmnist(tmp_path / "nope.npz")
    with pytest.raises(TypeError, match="shipped name"):
        load_medmnist(3)
    path = tmp_path / "bad.npz"
    np.savez(path, train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(KeyError, match="train_labels"):
        load_medmnist(path, "train")
    np.savez(path, train_images=np.zeros((2, 28, 28), np.uint8), train_labels=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="multi-label"):
        load_medmnist(path, "train")
    np.savez(path, train_images=np.zeros((3, 28, 28), np.uint8), train_labels=np.zeros(2))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_medmnist(path, "train")


# ----------------------------------------------------------------------------- batched fetch
class PerItem(MedMNIST):
    """The same data with per-item access only: the DataLoader's fetcher skips a falsy
    ``__getitems__`` and calls ``dataset[i]`` for every index."""

    __getitems__ = None


def assert_same_batch(batched, per_item):
    assert type(batched) is type(per_item) is list and len(batched) == len(per_item) == 2
    for ours, theirs in zip(batched, per_item, strict=True):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def loader_batches(dataset, **settings):
    return list(DataLoader(dataset, generator=torch.Generator().manual_seed(0), **settings))


@pytest.mark.parametrize("name", SHIPPED_DATASETS)
def test_dataloader_batches_equal_per_item_batches(name):
    batched, per_item = MedMNIST(name, "val"), PerItem(name, "val")
    ours = loader_batches(batched, batch_size=50, shuffle=True)
    theirs = loader_batches(per_item, batch_size=50, shuffle=True)
    assert len(ours) == len(theirs) == -(-len(batched) // 50)
    for a, b in zip(ours, theirs, strict=True):
        assert_same_batch(a, b)
    images, labels = ours[0]
    channels = 3 if name == "retinamnist" else 1
    assert images.shape == (50, channels, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (50,) and labels.dtype == torch.int64
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0


def test_balanced_loader_batches_equal_per_item_batches():
    schedule = FineTuneSchedule(2, 1)
    ours, theirs = (balance(DataLoader(cls("breastmnist"), batch_size=64), schedule=schedule,
                            seed=3) for cls in (MedMNIST, PerItem))
    for epoch in range(2):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        pairs = list(zip(ours, theirs, strict=True))
        assert len(pairs) == len(ours) > 0
        for a, b in pairs:
            assert_same_batch(a, b)


def test_workers_give_the_per_item_batches():
    settings = dict(batch_size=40, shuffle=True, num_workers=2)
    ours = loader_batches(MedMNIST("breastmnist", "test"), **settings)
    theirs = loader_batches(PerItem("breastmnist", "test"), num_workers=0, batch_size=40,
                            shuffle=True)
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs, strict=True):
        assert_same_batch(a, b)
    loader = balance(DataLoader(MedMNIST("breastmnist", "test"), batch_size=40, num_workers=2),
                     seed=1)
    reference = balance(DataLoader(PerItem("breastmnist", "test"), batch_size=40), seed=1)
    for a, b in zip(loader, reference, strict=True):
        assert_same_batch(a, b)


VAL = MedMNIST("retinamnist", "val")
INDEX_FORMS = {
    "list": lambda i: list(i),
    "tuple": lambda i: tuple(i),
    "numpy int64": lambda i: np.asarray(i, dtype=np.int64),
    "numpy int32": lambda i: np.asarray(i, dtype=np.int32),
    "numpy strided": lambda i: np.repeat(np.asarray(i, dtype=np.int64), 2)[::2],
    "numpy scalars": lambda i: [np.int16(v) for v in i],
    "torch int64": lambda i: torch.as_tensor(i, dtype=torch.long),
    "torch int32": lambda i: torch.as_tensor(i, dtype=torch.int32),
    "0-d tensors": lambda i: [torch.tensor(v) for v in i],
}


@given(indices=st.lists(st.integers(-len(VAL), len(VAL) - 1), min_size=1, max_size=40),
       form=st.sampled_from(sorted(INDEX_FORMS)))
@settings(max_examples=60, deadline=None)
def test_getitems_equals_default_collate_of_items(indices, form):
    """Any accepted form of any valid indices (negative ones count from the end, as for
    dataset[i]) collates to the per-item batch."""
    batch = VAL.__getitems__(INDEX_FORMS[form](indices))
    assert len(batch) == len(indices)
    assert_same_batch(default_collate(batch), default_collate([VAL[i] for i in indices]))


def test_default_collate_takes_the_gathered_tensors_as_they_are():
    """The batched fetch has no step per sample: default_collate returns the batch's tensors."""
    batch = VAL.__getitems__(torch.arange(20))
    images, labels = default_collate(batch)
    assert images is batch.images and labels is batch.labels


def test_batch_reads_as_per_item_samples_for_a_custom_collate():
    indices = [5, 0, 5, 17]
    batch = VAL.__getitems__(indices)
    samples = [VAL[i] for i in indices]
    assert len(batch) == 4 and len(batch[1:3]) == 2
    for got in (list(batch), [batch[k] for k in range(4)], batch[:]):
        for (image, label), (ref_image, ref_label) in zip(got, samples, strict=True):
            assert isinstance(label, int) and label == ref_label
            torch.testing.assert_close(image, ref_image, rtol=0, atol=0)
    with pytest.raises(IndexError):
        batch[4]
    # A custom collate_fn that regroups the samples itself, in a DataLoader.
    first = next(iter(DataLoader(VAL, batch_size=8, collate_fn=lambda b: tuple(zip(*b, strict=True)))))
    assert first[1] == tuple(int(v) for v in VAL.labels[:8])
    # Samples taken out of their batch still collate like per-item ones.
    assert_same_batch(default_collate(list(batch)), default_collate(samples))
    assert "images=(4, 3, 28, 28)" in repr(batch)


def test_subset_and_stack_dataset_use_the_batched_fetch():
    subset = Subset(VAL, [3, 1, 4, 1, 5, 9])
    assert_same_batch(next(iter(DataLoader(subset, batch_size=6))),
                      default_collate([VAL[i] for i in [3, 1, 4, 1, 5, 9]]))
    stacked = StackDataset(VAL, PerItem("retinamnist", "val"))
    ours, theirs = next(iter(DataLoader(stacked, batch_size=10)))
    assert_same_batch(ours, theirs)


def test_empty_indices_give_no_samples():
    assert len(VAL.__getitems__([])) == 0
    assert len(VAL.__getitems__(torch.empty(0, dtype=torch.long))) == 0


def test_per_item_transform_is_applied_per_sample_in_batches():
    calls = []

    def to_numpy(image):  # a transform whose output the default collate converts itself
        calls.append(image.shape)
        return image.mul(2).numpy()

    batched, per_item = MedMNIST("breastmnist", "val", to_numpy), PerItem("breastmnist", "val",
                                                                             to_numpy)
    for a, b in zip(loader_batches(batched, batch_size=32, shuffle=True),
                    loader_batches(per_item, batch_size=32, shuffle=True), strict=True):
        assert_same_batch(a, b)
    assert calls == [(1, 28, 28)] * (2 * len(batched))


def test_batch_transform_runs_once_per_batch():
    calls = []

    def invert(images):
        calls.append(tuple(images.shape))
        return 1.0 - images

    dataset = MedMNIST("breastmnist", "val", batch_transform=invert)
    batches = loader_batches(dataset, batch_size=32)
    assert calls == [(32, 1, 28, 28), (32, 1, 28, 28), (14, 1, 28, 28)]
    plain = loader_batches(MedMNIST("breastmnist", "val"), batch_size=32)
    for (images, labels), (ref_images, ref_labels) in zip(batches, plain, strict=True):
        torch.testing.assert_close(images, 1.0 - ref_images, rtol=0, atol=0)
        assert torch.equal(labels, ref_labels)
    image, label = dataset[7]  # per item: the batch transform on a batch of one
    assert calls[-1] == (1, 1, 28, 28)
    torch.testing.assert_close(image, 1.0 - MedMNIST("breastmnist", "val")[7][0], rtol=0, atol=0)
    assert label == int(dataset.labels[7])


def test_transform_then_batch_transform():
    dataset = MedMNIST("breastmnist", "val", lambda image: image * 2,
                       batch_transform=lambda images: images + 1)
    images, _ = default_collate(dataset.__getitems__([0, 9]))
    reference = MedMNIST("breastmnist", "val")
    torch.testing.assert_close(images, torch.stack([reference[0][0], reference[9][0]]) * 2 + 1,
                               rtol=0, atol=0)
    torch.testing.assert_close(dataset[9][0], reference[9][0] * 2 + 1, rtol=0, atol=0)


def test_random_flip_shift_batch_transform_with_workers_is_reproducible():
    def run(num_workers):
        dataset = MedMNIST("breastmnist", "val", batch_transform=RandomFlipShift(seed=5))
        return [images for images, _ in loader_batches(dataset, batch_size=26,
                                                       num_workers=num_workers)]

    first, again = run(2), run(2)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    plain = [images for images, _ in loader_batches(MedMNIST("breastmnist", "val"),
                                                    batch_size=26)]
    assert not any(torch.equal(a, b) for a, b in zip(first, plain, strict=True))


@pytest.mark.parametrize(("indices", "error", "match"), [
    ([0.0, 1.0], TypeError, r"indices should be a list of ints.*got list of dtype float64"),
    ([True, False], TypeError, r"got list of dtype bool; pass integer positions \(a boolean mask"),
    (torch.tensor([True, False]), TypeError, "got Tensor of dtype torch.bool"),
    (torch.tensor([0.5]), TypeError, "got Tensor of dtype torch.float32"),
    (np.array([1.0]), TypeError, "got ndarray of dtype float64"),
    (["a"], TypeError, "got list of dtype <U1"),
    ({0: 1}, TypeError, "indices should be a list of ints.*but got dict"),
    (7, TypeError, "but got int"),
    (torch.zeros(2, 2, dtype=torch.long), ValueError, r"1-D .* shape \(2, 2\); flatten"),
    ([[0, 1]], ValueError, r"shape \(1, 2\)"),
    ([0, 100], IndexError, r"\[-100, 100\) for a dataset of 100 samples, but got index 100"),
    (np.array([-101]), IndexError, "but got index -101; check the sampler"),
])
def test_getitems_errors(indices, error, match):
    dataset = MedMNIST("breastmnist", "train")
    dataset.images, dataset.labels = dataset.images[:100], dataset.labels[:100]
    with pytest.raises(error, match=match):
        dataset.__getitems__(indices)


def test_transform_errors():
    with pytest.raises(TypeError, match=r"transform should be a callable on one \(C, H, W\) "
                                        r"image tensor or None, but got transform=3"):
        MedMNIST("breastmnist", "val", 3)
    with pytest.raises(TypeError, match="batch_transform should be a callable on a .* got "
                                        "batch_transform='flip'"):
        MedMNIST("breastmnist", "val", batch_transform="flip")
    wrong_size = MedMNIST("breastmnist", "val", batch_transform=lambda images: images[:1])
    with pytest.raises(ValueError, match=r"tensor of 4 images .* returned a tensor of shape "
                                         r"\(1, 1, 28, 28\) for an input of shape \(4, 1, 28, 28\)"):
        wrong_size.__getitems__([0, 1, 2, 3])
    not_tensor = MedMNIST("breastmnist", "val", batch_transform=lambda images: images.numpy())
    with pytest.raises(ValueError, match="returned ndarray"):
        not_tensor[0]
    numpy_items = MedMNIST("breastmnist", "val", lambda image: image.numpy(),
                           batch_transform=lambda images: images)
    with pytest.raises(TypeError, match="transform should return tensors .* returned ndarray"):
        numpy_items.__getitems__([0, 1])
    shapes = MedMNIST("breastmnist", "val", lambda image: image[:, : int(image.sum()) % 5 + 20],
                      batch_transform=lambda images: images)
    with pytest.raises(ValueError, match="images of one shape"):
        shapes.__getitems__(list(range(10)))


def test_balance_hands_medmnist_index_arrays_with_the_same_batches():
    dataset = MedMNIST("breastmnist")
    arrays = balance(DataLoader(dataset, batch_size=32), seed=2)
    lists = balance(DataLoader(dataset, batch_size=32), seed=2, batch_type="list")
    assert arrays.batch_sampler.batch_type == "numpy"
    for (images_a, labels_a), (images_l, labels_l) in zip(arrays, lists, strict=True):
        torch.testing.assert_close(images_a, images_l, rtol=0, atol=0)
        torch.testing.assert_close(labels_a, labels_l, rtol=0, atol=0)
