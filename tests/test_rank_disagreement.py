"""Ranks of a real gloo process group that disagree (one refuses its labels, or every rank
passes rank=0) get a ValueError on every rank, instead of a hang, a gloo error or overlapping
shards (README "Distributed training")."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import pytest
import torch.multiprocessing as mp
from helpers.sampler import as_lists

from balancer import BalancedBatchSampler


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gloo_rank(rank, world, port, out_dir):
    """Two scenarios in one pair of gloo processes (spawning costs ~10 s on this machine):
    1. every rank passes rank=0 explicitly (a hard-coded rank);
    2. rank 1's labels differ: a per-rank shard that holds one class."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=timedelta(seconds=8))
    labels = [0] * 6 + [1] * 3

    def attempt(build):
        try:
            return f"built {as_lists(build())}"
        except Exception as error:  # the type is what the tests check
            return f"{type(error).__name__}: {error}"

    same_rank = attempt(lambda: BalancedBatchSampler(labels, 2, seed=0, num_replicas=world,
                                                     rank=0))
    own = labels if rank == 0 else [0] * 9
    bad_labels = attempt(lambda: BalancedBatchSampler(own, 2, seed=0))
    for name, result in (("same_rank", same_rank), ("bad_labels", bad_labels)):
        with open(os.path.join(out_dir, f"{name}{rank}.txt"), "w") as record:
            record.write(result)
    try:
        dist.destroy_process_group()
    except Exception:  # teardown after a failed peer
        pass


@pytest.fixture(scope="module")
def gloo_records(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("gloo")
    context = mp.start_processes(_gloo_rank, args=(2, _free_port(), str(out_dir)),
                                 nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the gloo ranks did not finish")
    return {path.stem: path.read_text() for path in out_dir.iterdir()}


def test_a_rank_refusing_its_labels_gives_every_rank_a_value_error(
        gloo_records):
    """Promise (README "Misuse is loud" and "Distributed training"): "ranks that disagree
    (`seed=rank`, labels in another order, a shorter dataset) get a `ValueError` naming what
    differs"; "construction checks that every rank built the same plan".

    Reproduction: 2 gloo ranks; rank 0 builds BalancedBatchSampler([0]*6 + [1]*3, 2), rank 1
    BalancedBatchSampler([0]*9, 2) (its labels differ: a per-rank shard with one class).

    Expected: every rank gets a ValueError naming what differs. Before the fix: rank 1 raises its
    own ValueError before the collective, and rank 0, waiting in all_gather_object, gets
    gloo's RuntimeError "Connection closed/reset by peer" when rank 1 exits -- or hangs until
    the process-group timeout if rank 1 stays alive (30 min by default for gloo).
    """
    assert gloo_records["bad_labels1"].startswith("ValueError")
    assert gloo_records["bad_labels0"].startswith("ValueError"), gloo_records["bad_labels0"]


def test_ranks_that_all_pass_rank_0_are_refused(gloo_records):
    """Promise (README "Misuse is loud"): under a process group, construction compares the
    ranks' settings so that ranks "get a ValueError naming what differs, instead of silently
    training on overlapping shards".

    Reproduction: 2 gloo ranks, each builds BalancedBatchSampler(labels, 2, seed=0,
    num_replicas=2, rank=0) -- a hard-coded rank (the same happens through balance() with a
    DistributedSampler(dataset, num_replicas=2, rank=0)).

    Expected: a ValueError (the all_gather already runs; the ranks' `rank` values collide).
    Before the fix: both ranks build without complaint and yield identical batches: the whole run
    trains on rank 0's half of the plan twice and never sees the other half.
    """
    results = gloo_records["same_rank0"], gloo_records["same_rank1"]
    assert not all(result.startswith("built") for result in results), (
        f"both ranks built the same shard: {results[0][:80]}")
