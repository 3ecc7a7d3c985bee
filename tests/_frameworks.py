"""Shared by the framework jobs (``tests/_job_*.py``) and ``tests/test_integrations.py``.

Every job trains a tiny model for ``EPOCHS`` epochs (``FINETUNE`` of them at the true
frequencies) on ``WORLD_SIZE`` CPU processes started by the framework's own launcher, and each
rank writes the dataset indices of every batch it trained on, with the epoch, to
``<out>/rank<r>.json``. The test process then checks those records; nothing is checked inside the
ranks.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

COUNTS = (150, 40, 10)  # 200 items; the largest class is C * n_max / N = 2.25x over-represented
BATCH_SIZE = 8
EPOCHS, FINETUNE = 3, 1
WORLD_SIZE = 2
SEED = 7
FEATURES = 4


def make_labels() -> np.ndarray:
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    np.random.default_rng(0).shuffle(labels)
    return labels


class Points(Dataset):
    """Item ``i`` is ``(features, label, i)``; labels in ``.targets`` (found without loading)."""

    def __init__(self) -> None:
        self.targets = make_labels()
        generator = torch.Generator().manual_seed(0)
        centres = torch.randn(len(COUNTS), FEATURES, generator=generator) * 3
        self.features = centres[torch.from_numpy(self.targets)] + torch.randn(
            len(self.targets), FEATURES, generator=generator)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.features[index], int(self.targets[index]), index


class Recorder:
    """Collects ``(epoch, indices)`` per step and writes them atomically."""

    def __init__(self, out: str | os.PathLike, rank: int) -> None:
        self.path = Path(out) / f"rank{rank}.json"
        self.steps: list[tuple[int, list[int]]] = []
        self.extra: dict = {}

    def add(self, epoch: int, indices) -> None:
        self.steps.append((int(epoch), [int(i) for i in indices]))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({"steps": self.steps, **self.extra}))
        os.replace(partial, self.path)


def load_records(out: str | os.PathLike) -> list[dict]:
    return [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]


def by_epoch(record: dict) -> dict[int, list[list[int]]]:
    epochs: dict[int, list[list[int]]] = collections.defaultdict(list)
    for epoch, indices in record["steps"]:
        epochs[epoch].append(indices)
    return dict(epochs)


def check_epochs(records: list[dict], *, seed: int = SEED) -> None:
    """The invariants every framework run must meet, epoch by epoch, across the ranks."""
    from balancer import BalancedBatchSampler, FineTuneSchedule

    labels = make_labels()
    num_samples, num_classes, n_max = len(labels), len(COUNTS), max(COUNTS)
    largest = set(np.flatnonzero(labels == int(np.argmax(COUNTS))).tolist())
    schedule = FineTuneSchedule(EPOCHS, FINETUNE)
    ranks = [by_epoch(record) for record in records]
    assert [sorted(r) for r in ranks] == [list(range(EPOCHS))] * WORLD_SIZE, "epochs trained"
    for epoch in range(EPOCHS):
        shards = [r[epoch] for r in ranks]
        # Equal batch counts per rank (DDP's lock-step), all batches full.
        assert len({len(shard) for shard in shards}) == 1, (epoch, [len(s) for s in shards])
        assert all(len(batch) == BATCH_SIZE for shard in shards for batch in shard)
        served = collections.Counter(i for shard in shards for batch in shard for i in batch)
        total = sum(served.values())
        # The ranks' batches are exactly the plan every rank builds for this epoch, each batch
        # on one rank: no position served twice, none lost.
        for rank, shard in enumerate(shards):
            reference = BalancedBatchSampler(labels, BATCH_SIZE, seed=seed, schedule=schedule,
                                             num_replicas=WORLD_SIZE, rank=rank)
            reference.set_epoch(epoch)
            assert shard == list(reference), f"rank {rank}, epoch {epoch}: not the plan's batches"
        if schedule.phase(epoch) == "balanced":
            padding = total - num_classes * n_max
            assert 0 <= padding < WORLD_SIZE * BATCH_SIZE
            # G1: every sample of every class at least once; a largest class's samples exactly
            # once, plus at most the padding.
            assert set(served) == set(range(num_samples)), (
                f"epoch {epoch}: {num_samples - len(served)} samples never served")
            repeats = sum(served[i] - 1 for i in largest)
            assert all(served[i] >= 1 for i in largest) and repeats <= padding, (epoch, repeats)
        else:
            # One pass at the true frequencies: every sample once, plus the padding.
            padding = total - num_samples
            assert 0 <= padding < WORLD_SIZE * BATCH_SIZE
            assert set(served) == set(range(num_samples))
            assert sum(count - 1 for count in served.values()) == padding


def check_resumed(full: list[dict], first: list[dict], second: list[dict], stop: int) -> None:
    """Rank by rank: the stopped run trained the first ``stop`` steps of the full run, and the
    resumed run exactly the rest (same epochs, same batches, none repeated, none skipped)."""
    for rank in range(WORLD_SIZE):
        steps = [tuple(map(_freeze, step)) for step in full[rank]["steps"]]
        before = [tuple(map(_freeze, step)) for step in first[rank]["steps"]]
        after = [tuple(map(_freeze, step)) for step in second[rank]["steps"]]
        assert before == steps[:stop], f"rank {rank}: the stopped run is not the full run's start"
        assert len(after) == len(steps) - stop, (
            f"rank {rank}: resumed with {len(after)} steps, {len(steps) - stop} were left")
        assert after == steps[stop:], f"rank {rank}: the resumed steps are not the remaining ones"


def _freeze(value):
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------- multi-label runs
# The same launchers with the multi-label samplers (balance(..., sampler=KIND)): 300 items with
# ChestX-ray-like findings (and "No Finding"), 3 epochs, the last at the true frequencies; each
# run ("KIND:STOP") stops after STOP steps with a checkpoint and is resumed by a second job.
MULTILABEL_SAMPLERS = {"label-balanced": {}, "repeat-factor": {"threshold": 0.2}}
ML_EPOCHS, ML_FINETUNE = 3, 1
ML_NAMES = ("Effusion", "Mass", "Hernia", "Nodule")


def make_findings(num_samples: int = 300) -> list[str]:
    rng = np.random.default_rng(1)
    rows = rng.random((num_samples, len(ML_NAMES))) < np.array([0.3, 0.15, 0.03, 0.1])
    rows[0, 2] = True  # Hernia has at least one positive
    return ["|".join(np.array(ML_NAMES)[row]) or "No Finding" for row in rows]


class Findings(Dataset):
    """Item ``i`` is ``(features, multi-hot target, i)``; the findings, one ``|``-joined string
    per item, in ``.findings`` (``balance(loader, "findings", sampler=...)``)."""

    def __init__(self) -> None:
        self.findings = make_findings()
        self.target = torch.tensor([[float(name in f.split("|")) for name in ML_NAMES]
                                    for f in self.findings])
        generator = torch.Generator().manual_seed(0)
        self.features = self.target @ torch.randn(len(ML_NAMES), FEATURES, generator=generator) \
            + torch.randn(len(self.findings), FEATURES, generator=generator)

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, index: int):
        return self.features[index], self.target[index], index


def parse_run(spec: str) -> tuple[str, int]:
    """``"KIND:STOP"`` (a multi-label sampler and the steps a first run makes before its
    checkpoint) as ``(KIND, STOP)``; a job given a list of them trains one run per spec."""
    kind, _, stop = spec.rpartition(":")
    if kind not in MULTILABEL_SAMPLERS or not stop.isdigit() or int(stop) < 1:
        raise ValueError(f"run {spec!r} should be KIND:STOP with KIND one of "
                         f"{sorted(MULTILABEL_SAMPLERS)} and STOP a positive step count, "
                         f"e.g. 'repeat-factor:11'")
    return kind, int(stop)


def run_name(spec: str) -> str:
    """The folder of one run's records (and checkpoint): ``repeat-factor:11`` -> ``repeat-factor-11``."""
    kind, stop = parse_run(spec)
    return f"{kind}-{stop}"


def multilabel_sampler(kind: str, *, num_replicas: int, rank: int, seed: int = SEED):
    """The sampler a framework run with ``kind`` builds on ``rank``, built here directly."""
    from balancer import FineTuneSchedule, MultiLabelBalancedSampler, RepeatFactorSampler

    plan = {"label-balanced": MultiLabelBalancedSampler, "repeat-factor": RepeatFactorSampler}
    return plan[kind](make_findings(), BATCH_SIZE, seed=seed, num_replicas=num_replicas,
                      rank=rank, schedule=FineTuneSchedule(ML_EPOCHS, ML_FINETUNE),
                      **MULTILABEL_SAMPLERS[kind])


def check_multilabel_epochs(records: list[dict], kind: str, *, seed: int = SEED) -> None:
    """Per epoch: every rank trained as many batches, all full, exactly its shard of the plan;
    and the shards are disjoint: laid out position by position (global batch ``g`` on rank
    ``g % WORLD_SIZE``) they are the single-process plan's batches, the last one completed by
    the padding, so no position was served twice and none lost."""
    ranks = [by_epoch(record) for record in records]
    assert [sorted(r) for r in ranks] == [list(range(ML_EPOCHS))] * WORLD_SIZE, "epochs trained"
    for epoch in range(ML_EPOCHS):
        shards = [r[epoch] for r in ranks]
        assert len({len(shard) for shard in shards}) == 1, (epoch, [len(s) for s in shards])
        assert all(len(batch) == BATCH_SIZE for shard in shards for batch in shard)
        for rank, shard in enumerate(shards):
            reference = multilabel_sampler(kind, num_replicas=WORLD_SIZE, rank=rank, seed=seed)
            reference.set_epoch(epoch)
            assert shard == list(reference), f"{kind} rank {rank}, epoch {epoch}: not its shard"
        laid_out = [shards[g % WORLD_SIZE][g // WORLD_SIZE]
                    for g in range(WORLD_SIZE * len(shards[0]))]
        single = multilabel_sampler(kind, num_replicas=1, rank=0, seed=seed)
        single.set_epoch(epoch)
        plan = list(single)
        assert len(laid_out) - len(plan) < WORLD_SIZE, (epoch, len(laid_out), len(plan))
        for position, batch in enumerate(plan):  # order inside a batch is shuffled per rank
            missing = collections.Counter(batch) - collections.Counter(laid_out[position])
            assert not missing, f"{kind} epoch {epoch}: batch {position} lacks {missing}"
        served = collections.Counter(i for b in laid_out for i in b)
        padding = sum(served.values()) - sum(len(b) for b in plan)
        assert 0 <= padding < WORLD_SIZE * BATCH_SIZE
        if epoch >= ML_EPOCHS - ML_FINETUNE:  # one pass at the true frequencies
            assert set(served) == set(range(len(make_findings())))
            assert sum(count - 1 for count in served.values()) == padding
        elif kind == "repeat-factor":  # each sample its epoch's copies, plus the padding
            copies = single.copies(epoch)
            assert all(served[i] >= copies[i] for i in range(len(copies)))
            assert sum(served.values()) - int(copies.sum()) == padding


def close_process_group() -> None:
    """Tear the default process group down before the interpreter exits. A gloo group left to
    the interpreter's finalisation now and then aborts the process after all its work is done
    ("terminate called without an active exception", SIGABRT), failing a run that succeeded."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
