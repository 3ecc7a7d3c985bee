"""balance() under a real torch.distributed process group: 2 processes, gloo, CPU.

Each rank wraps a DataLoader with balance(seed=None) and trains a tiny DistributedDataParallel
model through a balanced epoch and a fine-tune epoch; the test then checks the ranks' batches
against the invariants of the plan.
"""

from __future__ import annotations

import collections
import time
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from _distributed import (
    BATCH_SIZE,
    COUNTS,
    EPOCHS,
    disagreeing_rank,
    free_port,
    make_labels,
    run_rank,
)

from balancer import BalancedBatchSampler, FineTuneSchedule

WORLD_SIZE = 2


def launch(tmp_path, num_workers, timeout=240.0, target=run_rank):
    """Run the ranks and return their records.

    A rank that raises fails the test here, and so does a hung run (after ``timeout``). One case
    is tolerated, with a warning: a rank killed by a signal after *every* rank has saved its
    complete record, i.e. a crash in torch.distributed's own teardown (seen once on a CI machine:
    SIGABRT, "terminate called without an active exception"), after all the training and
    sharding under test has run; the records are then checked as usual.
    """
    paths = [tmp_path / f"rank{r}.pt" for r in range(WORLD_SIZE)]
    args = (WORLD_SIZE, free_port(), str(tmp_path))
    if target is run_rank:
        args += (num_workers,)
    context = mp.start_processes(target, args=args,
                                 nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail(f"the {WORLD_SIZE} gloo ranks did not finish in {timeout:.0f} s")
    except mp.ProcessExitedException as error:
        if error.signal_name is None or not all(path.exists() for path in paths):
            raise
        warnings.warn(f"gloo rank {error.error_index} died with {error.signal_name} after every "
                      f"rank had saved its record (torch.distributed teardown); checking the "
                      f"records", RuntimeWarning, stacklevel=2)
    return [torch.load(path, weights_only=False) for path in paths]


def interleave(shards):
    """The global plan: rank r serves global batches r, r + R, r + 2R, ..."""
    return [shards[g % len(shards)][g // len(shards)]
            for g in range(len(shards[0]) * len(shards))]


def check_ranks(records, setting):
    counts = COUNTS[setting]
    labels = make_labels(counts)
    ranks = [record[setting] for record in records]
    # The process group gave the sharding, and rank 0's fresh seed reached every rank.
    assert [(r["num_replicas"], r["rank"]) for r in ranks] == [(2, 0), (2, 1)]
    assert len({r["seed"] for r in ranks}) == 1
    seed = ranks[0]["seed"]
    schedule = FineTuneSchedule(total_epochs=EPOCHS, finetune_epochs=1)
    n_max, num_classes, num_samples = max(counts), len(counts), len(labels)
    usage = np.zeros(num_samples, dtype=np.int64)
    for epoch, phase in enumerate(["balanced"] * (EPOCHS - 1) + ["finetune"]):
        shards = [r["epochs"][epoch]["batches"] for r in ranks]
        assert [r["epochs"][epoch]["phase"] for r in ranks] == [phase, phase]
        # Equal numbers of batches on every rank, as len() announced; all batches full.
        lengths = {len(shard) for shard in shards} | {r["epochs"][epoch]["len"] for r in ranks}
        assert len(lengths) == 1
        plan = interleave(shards)
        assert all(len(batch) == BATCH_SIZE for batch in plan)
        # Each global plan position is served by exactly one rank: the ranks' batches are the
        # plan a single process builds for the same seed (with rank r taking every R-th batch).
        references = [BalancedBatchSampler(labels, BATCH_SIZE, seed=seed, schedule=schedule,
                                           num_replicas=2, rank=rank) for rank in range(2)]
        for rank, reference in enumerate(references):
            reference.set_epoch(epoch)
            assert shards[rank] == list(reference)
        used = collections.Counter(i for batch in plan for i in batch)
        total = len(plan) * BATCH_SIZE
        if phase == "balanced":
            per_class = collections.Counter(int(labels[i]) for i in used.elements())
            largest = np.flatnonzero(labels == int(np.argmax(counts)))
            if setting == "exact":
                assert total == num_classes * n_max
                assert set(per_class.values()) == {n_max}
                assert all(used[i] == 1 for i in largest)  # each once per balanced epoch
            else:
                assert num_classes * n_max <= total < num_classes * n_max + 2 * BATCH_SIZE
                assert max(per_class.values()) - min(per_class.values()) <= 1
            # G1 in every balanced epoch, not only the first: every sample of every class.
            assert set(used) == set(range(num_samples))
            # G2 across epochs: inside a class, use counts never differ by more than one.
            for batch in plan:
                np.add.at(usage, batch, 1)
                for cls in range(num_classes):
                    within = usage[labels == cls]
                    assert within.max() - within.min() <= 1
        else:
            assert set(used) == set(range(num_samples))  # every sample, once
            if setting == "exact":
                assert total == num_samples and set(used.values()) == {1}
            else:
                assert num_samples < total < num_samples + 2 * BATCH_SIZE
                # The padding repeats the first samples of the epoch's permutation: the plan is
                # one permutation of all samples followed by its first total - N samples again.
                flat = [i for batch in plan for i in batch]
                assert sorted(flat[:num_samples]) == list(range(num_samples))
                assert flat[num_samples:] == flat[:total - num_samples]
                assert sorted(used.values()) == [1] * (2 * num_samples - total) + [2] * (
                    total - num_samples)  # so no sample is used more than twice
    # DDP trained through both phases: the replicas agree and the loss went down.
    torch.testing.assert_close(ranks[0]["weights"], ranks[1]["weights"], rtol=0, atol=0)
    losses = [loss for epoch in ranks[0]["epochs"] for loss in epoch["losses"]]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_two_gloo_ranks_balanced_and_finetune_epochs(tmp_path):
    records = launch(tmp_path, num_workers=0)
    for setting in COUNTS:
        check_ranks(records, setting)


def test_ranks_that_build_different_plans_are_refused(tmp_path):
    errors = launch(tmp_path, num_workers=0, timeout=120.0, target=disagreeing_rank)
    for rank_errors in errors:
        assert rank_errors["agree"] is None
        assert "ranks built different plans" in rank_errors["seed=rank"]
        assert "seed: rank 0 0, rank 1 1" in rank_errors["seed=rank"]
        assert "do not pass seed=rank" in rank_errors["seed=rank"]
        assert "labels: rank 0" in rank_errors["reordered"]
        assert "samples: rank 0 56, rank 1 53" in rank_errors["shorter"]


@pytest.mark.slow
def test_two_gloo_ranks_with_loader_workers(tmp_path):
    records = launch(tmp_path, num_workers=2)
    for setting in COUNTS:
        check_ranks(records, setting)
