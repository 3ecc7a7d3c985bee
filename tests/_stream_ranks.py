"""One rank of a real 2-process gloo run of balanced streams (see test_stream_ranks.py): for
each kind of source, builds balance(DataLoader(stream, num_workers=2)) with seed=None, trains
a tiny DDP model through a balanced and a fine-tune epoch, and saves what it served."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from _distributed import exit_rank, loopback_env, save_record
from helpers.streams import RecordReads, Records, class_codes, hf_stream, wds_pipeline
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from balancer import FineTuneSchedule, balance

COUNTS = (100, 50, 30)
BATCH_SIZE = 6
EPOCHS = 2  # 1 balanced, 1 fine-tune
SOURCES = ("plain", "webdataset", "datasets")


def source_of(kind: str, out_dir: str):
    codes = class_codes(COUNTS)
    if kind == "plain":
        return Records(codes), "label"
    if kind == "webdataset":
        return wds_pipeline(sorted(str(p) for p in Path(out_dir, "shards").glob("*.tar"))), "cls"
    return hf_stream(codes, 4), "label"


def run_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(loopback_env())
    # As torchrun sets them: webdataset's split_by_node reads them in the loader's workers.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=120))
    try:
        record: dict = {}
        for kind in SOURCES:
            source, key = source_of(kind, out_dir)
            reads = Path(out_dir, f"reads-{kind}")
            reads.mkdir(exist_ok=True)
            # fork: workers start in a fraction of spawn's time (the rank itself was spawned)
            plain = DataLoader(source, batch_size=BATCH_SIZE, num_workers=2,
                               multiprocessing_context="fork")
            loader = balance(plain, labels=RecordReads(key, reads, rank), classes=3,
                             buffer_size=16, seed=None, schedule=FineTuneSchedule(EPOCHS, 1))
            torch.manual_seed(0)
            model = DistributedDataParallel(nn.Linear(1, 3))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            epochs = []
            for epoch in range(EPOCHS):
                loader.set_epoch(epoch)
                batches = []
                for batch in loader:  # a rank that ran out of batches would hang DDP here
                    features = batch["id"].float().unsqueeze(1) / 200
                    loss = nn.functional.cross_entropy(model(features), batch[key])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    batches.append({"id": batch["id"].tolist(), "label": batch[key].tolist()})
                epochs.append({"phase": loader.phase, "batches": batches,
                               "padded": loader.padded_batches})
            record[kind] = {"seed": loader.seed, "num_replicas": loader.stream.num_replicas,
                            "rank": loader.stream.rank, "epochs": epochs}
            if kind == "webdataset":  # rank 1 runs out first: resume while it re-serves
                record["resume"] = resume_in_padding(out_dir, loader.seed)
            del model, optimizer, loader, plain
        save_record(record, out_dir, rank)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    exit_rank()


def resume_in_padding(out_dir: str, seed: int) -> dict:
    """Epoch 0 of the webdataset stream in full; then stopped one step before its end (rank 1,
    with fewer batches of its own, is re-serving by then), checkpointed and resumed."""

    def build():
        source, key = source_of("webdataset", out_dir)
        plain = DataLoader(source, batch_size=BATCH_SIZE, num_workers=2,
                           multiprocessing_context="fork")
        return balance(plain, labels=key, classes=3, buffer_size=16, seed=seed), key

    loader, _ = build()
    full = [batch["id"].tolist() for batch in loader]
    own = len(full) - loader.padded_batches
    loader, _ = build()
    iterator = iter(loader)
    seen = [next(iterator)["id"].tolist() for _ in range(len(full) - 1)]
    state = loader.state_dict()
    del iterator
    restored, _ = build()
    restored.load_state_dict(state)
    rest = [batch["id"].tolist() for batch in restored]
    return {"full": full, "own": own, "seen": seen, "rest": rest}
