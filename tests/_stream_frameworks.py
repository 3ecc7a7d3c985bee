"""Shared by the balanced-stream framework jobs (``tests/_job_*_stream.py``) and
``tests/test_frameworks_with_streams.py``.

A stream of 300 items (``Stream``: 200, 70 and 30 of three classes, in a seeded order) is
balanced by each framework's own launcher on ``WORLD_SIZE`` CPU processes for ``EPOCHS``
epochs, the last at the true frequencies; each rank writes the key of every item of every
batch it trained on, with the epoch, to ``<out>/rank<r>.json`` (``_frameworks.Recorder``). The
test process checks the records against the batches each rank's stream makes when built here
in one process with ``num_replicas`` and ``rank`` given.
"""

from __future__ import annotations

import collections
import itertools

import numpy as np
import torch
from _frameworks import by_epoch
from torch.utils.data import IterableDataset

COUNTS = (200, 70, 30)
BATCH_SIZE = 8
BUFFER_SIZE = 16
EPOCHS, FINETUNE = 3, 1
WORLD_SIZE = 2
SEED = 7
FEATURES = 4


def make_labels() -> np.ndarray:
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    # This order gives the two ranks' shares 36 and 39 batches in each balanced epoch, so the
    # runs exercise the repeats that keep the ranks in step.
    np.random.default_rng(3).shuffle(labels)
    return labels


class Stream(IterableDataset):
    """Item ``i`` is ``{"x": features, "cls": label, "key": i}``, in the same order every pass
    (split between the ranks by position)."""

    def __init__(self) -> None:
        self.labels = make_labels()
        generator = torch.Generator().manual_seed(0)
        centres = torch.randn(len(COUNTS), FEATURES, generator=generator) * 3
        self.features = centres[torch.from_numpy(self.labels)] + torch.randn(
            len(self.labels), FEATURES, generator=generator)

    def __iter__(self):
        for index, label in enumerate(self.labels.tolist()):
            yield {"x": self.features[index], "cls": label, "key": index}


def stream_loader(*, num_replicas: int | None = None, rank: int | None = None,
                  num_workers: int = 0):
    """The balanced stream loader every job builds (``num_replicas``/``rank`` from the
    process group unless given)."""
    from balancer import BalancedStream, FineTuneSchedule
    from balancer.streams import BalancedStreamLoader

    stream = BalancedStream(Stream(), batch_size=BATCH_SIZE, classes=len(COUNTS), labels="cls",
                            buffer_size=BUFFER_SIZE, seed=SEED,
                            schedule=FineTuneSchedule(EPOCHS, FINETUNE),
                            num_replicas=num_replicas, rank=rank)
    return BalancedStreamLoader(stream, num_workers=num_workers)


def own_batches(rank: int, epoch: int, *, num_replicas: int = WORLD_SIZE,
                num_workers: int = 0) -> list[list[int]]:
    """The keys of the batches rank ``rank``'s share of the stream makes in ``epoch``."""
    loader = stream_loader(num_replicas=num_replicas, rank=rank, num_workers=num_workers)
    loader.set_epoch(epoch)
    return [batch["key"].tolist() for batch in loader]


def expected(epoch: int, num_workers: int = 0) -> list[list[list[int]]]:
    """Every rank's batches in ``epoch``: its own, then the first ones again until every rank
    has served as many as the rank with the most."""
    own = [own_batches(rank, epoch, num_workers=num_workers) for rank in range(WORLD_SIZE)]
    steps = max(len(batches) for batches in own)
    return [batches + list(itertools.islice(itertools.cycle(batches[:4]), steps - len(batches)))
            for batches in own]


def check_stream_epochs(records: list[dict], *, num_workers: int = 0) -> None:
    """Per epoch, across the ranks: the same number of steps on every rank; each rank exactly
    its share's balanced batches then repeats of its first ones (so balanced batches, full, in
    balanced epochs); every item at least once; in the fine-tune epoch every item served exactly
    once by the ranks' own batches, at the true frequencies, no item on two ranks."""
    labels = make_labels()
    num_classes = len(COUNTS)
    ranks = [by_epoch(record) for record in records]
    assert [sorted(r) for r in ranks] == [list(range(EPOCHS))] * WORLD_SIZE, "epochs trained"
    for epoch in range(EPOCHS):
        shards = [r[epoch] for r in ranks]
        assert len({len(shard) for shard in shards}) == 1, (epoch, [len(s) for s in shards])
        assert shards == expected(epoch, num_workers), f"epoch {epoch}: not the ranks' batches"
        served = collections.Counter(i for shard in shards for batch in shard for i in batch)
        assert set(served) == set(range(len(labels))), f"epoch {epoch}: items never served"
        if epoch < EPOCHS - FINETUNE:
            low, high = BATCH_SIZE // num_classes, -(-BATCH_SIZE // num_classes)
            for shard in shards:
                for batch in shard:
                    counts = np.bincount(labels[batch], minlength=num_classes)
                    assert len(batch) == BATCH_SIZE and counts.min() >= low \
                        and counts.max() <= high, (epoch, counts)
        else:
            own = [own_batches(rank, epoch, num_workers=num_workers)
                   for rank in range(WORLD_SIZE)]
            keys = [i for batches in own for batch in batches for i in batch]
            assert sorted(keys) == list(range(len(labels))), "fine-tune: each item once"
