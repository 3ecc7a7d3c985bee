"""The multi-label samplers under a real torch.distributed process group: 2 processes, gloo."""

from __future__ import annotations

import time

import pytest
import torch
import torch.multiprocessing as mp
from _distributed import free_port
from _multilabel_ranks import BATCH_SIZE, EPOCHS, findings, run_rank

from balancer import FineTuneSchedule, MultiLabelBalancedSampler, RepeatFactorSampler


def test_two_gloo_ranks_shard_one_plan(tmp_path):
    context = mp.start_processes(run_rank, args=(2, free_port(), str(tmp_path)), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 240
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the 2 gloo ranks did not finish in 240 s")
    records = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    labels = findings()
    for plan, make in (("label-balanced", lambda **kw: MultiLabelBalancedSampler(labels, **kw)),
                       ("repeat-factor",
                        lambda **kw: RepeatFactorSampler(labels, threshold=0.2, **kw))):
        ranks = [record[plan] for record in records]
        assert [(r["num_replicas"], r["rank"]) for r in ranks] == [(2, 0), (2, 1)]
        assert ranks[0]["seed"] == ranks[1]["seed"]  # rank 0's fresh seed reached rank 1
        for epoch in range(EPOCHS):
            shards = [r["epochs"][epoch]["batches"] for r in ranks]
            assert len(shards[0]) == len(shards[1]) == ranks[0]["epochs"][epoch]["len"]
            assert all(len(batch) == BATCH_SIZE for shard in shards for batch in shard)
            for rank in range(2):  # each rank served its shard of the single-process plan
                reference = make(batch_size=BATCH_SIZE, seed=ranks[0]["seed"], num_replicas=2,
                                 rank=rank, schedule=FineTuneSchedule(EPOCHS, 1))
                reference.set_epoch(epoch)
                assert shards[rank] == list(reference)
    for record in records:  # rank 1 built its sampler on reordered labels: refused on both
        for plan in ("label-balanced", "repeat-factor"):
            assert "the 2 ranks built different plans (labels:" in record["errors"][plan]
