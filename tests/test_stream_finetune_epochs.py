"""Fine-tune epochs of a balanced stream (FineTuneSchedule): the stream as it comes, in batches
of batch_size in stream order, each share's items once."""

from __future__ import annotations

from helpers.streams import Records, class_codes
from torch import nn
from torch.utils.data import DataLoader

from balancer import BalancedStream, FineTuneSchedule, balance

CODES = class_codes((40, 10, 5))
BATCH_SIZE = 6


def loader_for(num_workers=0, **kwargs):
    return balance(DataLoader(Records(CODES), batch_size=BATCH_SIZE, num_workers=num_workers,
                              **kwargs), labels="label", classes=3, buffer_size=16,
                   schedule=FineTuneSchedule(3, finetune_epochs=1, batchnorm="frozen"))


def test_a_finetune_epoch_is_the_stream_in_order_in_batches():
    loader = loader_for()
    loader.set_epoch(2)
    assert loader.phase == "finetune"
    batches = [batch["id"].tolist() for batch in loader]
    assert [i for batch in batches for i in batch] == list(range(len(CODES)))
    assert [len(batch) for batch in batches] == [6] * 9 + [1]  # 55 items
    loader.set_epoch(1)
    assert loader.phase == "balanced"
    assert all(b["label"].bincount().tolist() == [2, 2, 2] for b in loader)


def test_a_finetune_epoch_with_workers_gives_each_share_in_order():
    loader = loader_for(num_workers=2)
    loader.set_epoch(2)
    batches = [batch["id"].tolist() for batch in loader]
    served = [i for batch in batches for i in batch]
    assert sorted(served) == list(range(len(CODES)))  # every item once
    for worker in range(2):  # position split: worker w reads items w, w + 2, ...
        share = [i for i in served if i % 2 == worker]
        assert share == sorted(share)


def test_drop_last_drops_the_short_last_finetune_batch():
    loader = loader_for(drop_last=True)
    loader.set_epoch(2)
    assert [len(batch["id"]) for batch in loader] == [6] * 9


def test_train_mode_follows_the_phase_and_the_schedules_batchnorm():
    loader = loader_for()
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    loader.set_epoch(2)
    loader.train_mode(model)
    assert model.training and not model[1].training  # batchnorm="frozen" in fine-tune
    loader.set_epoch(0)
    loader.train_mode(model)
    assert model[1].training


def test_a_stream_without_a_schedule_is_always_balanced():
    stream = BalancedStream(Records(CODES), batch_size=BATCH_SIZE, classes=3, labels="label")
    stream.set_epoch(50)
    assert stream.phase == "balanced"
