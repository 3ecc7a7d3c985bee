import numpy as np
import pytest
import torch

from balancer import SHIPPED_DATASETS, MedMNIST, load_medmnist

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
