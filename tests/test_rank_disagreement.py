"""Ranks of a real gloo process group that disagree (one refuses its labels, or every rank
passes rank=0) get a ValueError on every rank, instead of a hang, a gloo error or overlapping
shards (README "Distributed training")."""

from __future__ import annotations

import json
import os
import re
import socket
import time
import traceback
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
        # Any exception is recorded with its exact type and message (and its traceback, for a
        # failure the tests did not expect); the tests compare both exactly.
        try:
            return {"built": as_lists(build())}
        except Exception as error:
            return {"type": type(error).__name__, "message": str(error),
                    "traceback": traceback.format_exc()}

    same_rank = attempt(lambda: BalancedBatchSampler(labels, 2, seed=0, num_replicas=world,
                                                     rank=0))
    own = labels if rank == 0 else [0] * 9
    bad_labels = attempt(lambda: BalancedBatchSampler(own, 2, seed=0))
    for name, result in (("same_rank", same_rank), ("bad_labels", bad_labels)):
        with open(os.path.join(out_dir, f"{name}{rank}.txt"), "w") as record:
            json.dump(result, record)
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
    records = {path.stem: json.loads(path.read_text()) for path in out_dir.iterdir()}
    expected = {f"{name}{rank}" for name in ("same_rank", "bad_labels") for rank in range(2)}
    assert set(records) == expected, f"records {sorted(records)}, expected {sorted(expected)}"
    return records


def assert_raised(record, error, pattern):
    """The rank raised exactly ``error`` (not a subclass, not another type) with a message that
    matches ``pattern`` in full; anything else -- a build, another exception -- fails."""
    assert "built" not in record, f"the rank built a sampler: {record['built']!r:.200}"
    assert record["type"] == error.__name__, (
        f"expected {error.__name__}, but the rank raised {record['type']}: {record['message']}\n"
        f"{record['traceback']}")
    assert re.fullmatch(pattern, record["message"]), (
        f"message {record['message']!r} does not match {pattern!r}")


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
    refusal = (r"labels holds a single class \(0\); balancing needs at least two: pass the "
               r"labels of a data set with two or more classes \(for a subset, take a larger or "
               r"stratified one\)")
    assert_raised(gloo_records["bad_labels1"], ValueError, refusal)
    assert_raised(gloo_records["bad_labels0"], ValueError,
                  r"BalancedBatchSampler: process 1 could not build its sampler \(ValueError: "
                  + refusal + r"\); every rank must build the sampler with valid arguments")


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
    for rank in range(2):
        assert_raised(gloo_records[f"same_rank{rank}"], ValueError,
                      r"BalancedBatchSampler: the 2 processes passed rank=\[0, 0\] \(process p "
                      r"gave the p-th\); each must pass its own rank, dist\.get_rank\(\), or "
                      r"rank=None, so that their shards are the whole plan")


@pytest.mark.parametrize("record", [
    {"type": "ValueError", "message": "gloo: Connection closed by peer", "traceback": ""},
    {"type": "RuntimeError", "message": "labels holds a single class (0)", "traceback": ""},
    {"built": [[0, 6]]},
])
def test_a_rank_failing_for_another_reason_fails_the_check(record):
    """Before, the checks only asked that the record start with "ValueError" (or not start with
    "built"), so a rank failing for any reason with a ValueError passed them."""
    with pytest.raises(AssertionError):
        assert_raised(record, ValueError, r"labels holds a single class \(0\)")
