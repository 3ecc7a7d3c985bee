"""MONAI's loaders through ``balance()``: the class and collate kept, a dictionary-transform
pipeline balanced epoch by epoch, then fine-tuned at the true frequencies."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from balancer import BalancedBatchSampler, FineTuneSchedule, balance

monai = pytest.importorskip("monai")
from monai.data import DataLoader, Dataset, ThreadDataLoader, list_data_collate  # noqa: E402
from monai.transforms import (  # noqa: E402
    Compose,
    EnsureTyped,
    Lambdad,
    RandFlipd,
    RandGaussianNoised,
    ScaleIntensityd,
)

COUNTS = (60, 15, 5)  # 80 volumes, the largest class 12x the smallest
BATCH_SIZE = 6


def records() -> list[dict]:
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    np.random.default_rng(0).shuffle(labels)
    rng = np.random.default_rng(1)
    # The item's index rides along as a 1-voxel "index" image, so the test can see which item
    # each batch row is after the transforms.
    return [{"image": rng.random((1, 8, 8), dtype=np.float32) * 100, "label": int(label),
             "index": np.array([i])} for i, label in enumerate(labels)]


def pipeline() -> Compose:
    return Compose([
        ScaleIntensityd(keys="image"),
        RandFlipd(keys="image", prob=0.5, spatial_axis=0),
        RandGaussianNoised(keys="image", prob=0.5, std=0.01),
        Lambdad(keys="label", func=lambda label: np.int64(label)),
        EnsureTyped(keys=["image", "label", "index"], track_meta=False),
    ])


@pytest.mark.parametrize("loader_class", [DataLoader, ThreadDataLoader])
def test_balance_keeps_monais_loader_class_its_collate_and_its_settings(loader_class):
    data = Dataset(records())
    plain = loader_class(data, batch_size=BATCH_SIZE)
    if loader_class is ThreadDataLoader:
        plain = ThreadDataLoader(data, batch_size=BATCH_SIZE, buffer_size=3)
    loader = balance(plain, "label", seed=0)
    assert isinstance(loader, loader_class)
    assert loader.collate_fn is list_data_collate
    assert type(loader) is type(balance(plain, "label", seed=0))  # one class per MONAI class
    if loader_class is ThreadDataLoader:
        assert loader.buffer_size == 3
    batch = next(iter(loader))
    assert sorted(batch) == ["image", "index", "label"]
    assert np.bincount(batch["label"].numpy(), minlength=3).tolist() == [2, 2, 2]


def test_the_lightning_adapter_keeps_monais_class_too():
    import lightning as L

    from balancer.integrations import lightning as balancer_lightning
    from balancer.integrations.lightning import LightningBalancedDataLoader

    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)
    loaders = [balancer_lightning.balance(trainer, ThreadDataLoader(Dataset(records()),
                                                                    batch_size=BATCH_SIZE),
                                          "label", finetune_epochs=1) for _ in range(2)]
    assert all(isinstance(loader, ThreadDataLoader)
               and isinstance(loader, LightningBalancedDataLoader) for loader in loaders)
    assert type(loaders[0]) is type(loaders[1])
    assert loaders[0].collate_fn is list_data_collate
    loaders[0].set_epoch(2)
    assert len(loaders[0]) == 14  # the fine-tune epoch: 80 volumes


def test_a_subclass_that_cannot_be_rebuilt_gives_a_plain_balanced_loader():
    """A subclass needing a setting it does not keep under its name cannot be rebuilt with it:
    balance() then returns a plain BalancedDataLoader, as for any DataLoader."""
    from balancer import BalancedDataLoader

    class Tagged(torch.utils.data.DataLoader):
        def __init__(self, dataset, tag, **kwargs):
            super().__init__(dataset, **kwargs)
            self.label = tag  # kept under another name

    loader = balance(Tagged(Dataset(records()), "x", batch_size=BATCH_SIZE), "label", seed=0)
    assert type(loader) is BalancedDataLoader
    assert len(next(iter(loader))["label"]) == BATCH_SIZE


def test_a_thread_loader_repeating_batches_is_refused_naming_the_setting():
    plain = ThreadDataLoader(Dataset(records()), batch_size=BATCH_SIZE, repeats=2)
    with pytest.raises(ValueError, match=r"ThreadDataLoader with repeats=2.*repeats=1"):
        balance(plain, "label")


@pytest.mark.parametrize("loader_class", [DataLoader, ThreadDataLoader])
def test_a_dictionary_transform_pipeline_two_balanced_epochs_then_fine_tune(loader_class):
    data = Dataset(records(), transform=pipeline())
    labels = np.array([record["label"] for record in records()])
    loader = balance(loader_class(data, batch_size=BATCH_SIZE), seed=3,
                     schedule=FineTuneSchedule(3, 1))  # labels found in the dataset's records
    reference = BalancedBatchSampler(labels, BATCH_SIZE, seed=3, schedule=FineTuneSchedule(3, 1))
    for epoch in range(3):
        loader.set_epoch(epoch)
        reference.set_epoch(epoch)
        served, counts = [], collections.Counter()
        for batch in loader:
            assert batch["image"].shape[1:] == (1, 8, 8) and batch["image"].dtype == torch.float32
            assert -0.1 < batch["image"].min() and batch["image"].max() < 1.1  # scaled, + noise
            index = batch["index"].flatten().tolist()
            assert batch["label"].tolist() == labels[index].tolist()
            served.append(index)
            counts.update(batch["label"].tolist())
        assert served == list(reference)
        if epoch < 2:  # balanced: every batch 2 + 2 + 2, the epoch 3 x 60
            assert all(np.bincount(labels[b], minlength=3).tolist() == [2, 2, 2] for b in served)
            assert [counts[c] for c in range(3)] == [60, 60, 60]
        else:  # one pass at the true frequencies: the 80 volumes, in 14 batches (the last of 2)
            assert sorted(i for b in served for i in b) == list(range(80)) and len(served) == 14
            assert [counts[c] for c in range(3)] == list(COUNTS) and loader.phase == "finetune"
