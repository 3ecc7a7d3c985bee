"""Balanced streams under a real torch.distributed process group: 2 gloo ranks x 2 loader
workers, for a plain IterableDataset, webdataset tar shards and a Hugging Face stream."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import torch
import torch.multiprocessing as mp
from _distributed import free_port
from _stream_ranks import COUNTS, EPOCHS, SOURCES, run_rank
from helpers.streams import class_codes, reads, write_shards


def test_two_gloo_ranks_with_two_workers_each_share_the_stream(tmp_path):
    codes = class_codes(COUNTS)
    # 5 shards: split_by_node gives rank 0 three and rank 1 two, so rank 1 runs out first and
    # must re-serve batches for the DDP steps to match.
    write_shards(tmp_path / "shards", codes, 5)
    context = mp.start_processes(run_rank, args=(2, free_port(), str(tmp_path)), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 240
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the 2 gloo ranks did not finish in 240 s")
    records = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for kind in SOURCES:
        ranks = [record[kind] for record in records]
        assert [(r["num_replicas"], r["rank"]) for r in ranks] == [(2, 0), (2, 1)]
        assert ranks[0]["seed"] == ranks[1]["seed"]  # rank 0's fresh seed reached rank 1
        # The balanced epoch read every item exactly once over the 4 shares (labels are read
        # once per item read; the fine-tune epoch reads no label).
        shares = reads(tmp_path / f"reads-{kind}")
        assert len(shares) == 4 and all(shares.values()), kind
        assert sorted(i for ids in shares.values() for i in ids) == list(range(len(codes)))
        for epoch in range(EPOCHS):
            served = [r["epochs"][epoch]["batches"] for r in ranks]
            # Both ranks served the same number of batches (the DDP steps above completed).
            assert len(served[0]) == len(served[1]), (kind, epoch)
            ids = [i for shard in served for batch in shard for i in batch["id"]]
            assert set(ids) == set(range(len(codes)))  # every item served
            for shard in served:
                for batch in shard:
                    assert [codes[i] for i in batch["id"]] == batch["label"]
                    if ranks[0]["epochs"][epoch]["phase"] == "balanced":
                        assert Counter(batch["label"]) == {0: 2, 1: 2, 2: 2}, kind
            padded = [r["epochs"][epoch]["padded"] for r in ranks]
            if kind == "webdataset":
                assert padded[0] == 0 and padded[1] > 0, padded
            if ranks[0]["epochs"][epoch]["phase"] == "finetune":
                # Each item exactly once, besides the batches the short rank re-served.
                own = [shard[:len(shard) - pad] for shard, pad in zip(served, padded, strict=True)]
                own_ids = [i for shard in own for batch in shard for i in batch["id"]]
                assert sorted(own_ids) == list(range(len(codes))), kind

    # Resumed one step before the end of an epoch, when rank 1 had run out of batches of its
    # own: its workers hand over their last batches again, so both ranks serve the last step.
    resumed = [record["resume"] for record in records]
    assert resumed[1]["own"] < len(resumed[1]["full"]) - 1 < len(resumed[0]["full"])
    assert resumed[0]["own"] == len(resumed[0]["full"])  # rank 0 re-served nothing
    assert resumed[0]["seen"] + resumed[0]["rest"] == resumed[0]["full"]
    assert len(resumed[1]["rest"]) == 1  # a re-served batch, as DDP needs the step
    assert resumed[1]["rest"][0] in resumed[1]["full"][:resumed[1]["own"]]
