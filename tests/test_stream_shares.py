"""Ranks and workers read disjoint shares of a stream whose union is the stream, for the three
kinds of source (a plain IterableDataset, webdataset tar shards read by webdataset's pipeline, a
Hugging Face datasets stream), and every batch they serve is balanced."""

from __future__ import annotations

import pytest
import torch
from helpers.streams import (
    RecordReads,
    Records,
    class_codes,
    hf_stream,
    reads,
    wds_pipeline,
    write_shards,
)
from torch.utils.data import DataLoader

from balancer import BalancedStream, balance

COUNTS = (120, 40, 12)
BATCH_SIZE = 6


def source_of(kind, codes, tmp_path, shards=4):
    """The stream and the key of its label."""
    if kind == "plain":
        return Records(codes), "label"
    if kind == "webdataset":
        return wds_pipeline(write_shards(tmp_path / "shards", codes, shards)), "cls"
    return hf_stream(codes, shards), "label"


def check_batches(batches, key, codes, num_classes=3):
    per_class = BATCH_SIZE // num_classes
    for batch in batches:
        assert batch[key].bincount(minlength=num_classes).tolist() == [per_class] * num_classes
        assert [codes[i] for i in batch["id"].tolist()] == batch[key].tolist()


@pytest.mark.parametrize("kind", ["plain", "webdataset", "datasets"])
def test_two_workers_read_disjoint_shares_whose_union_is_the_stream(kind, tmp_path):
    codes = class_codes(COUNTS)
    source, key = source_of(kind, codes, tmp_path)
    (tmp_path / "reads").mkdir()
    loader = balance(DataLoader(source, batch_size=BATCH_SIZE, num_workers=2),
                     labels=RecordReads(key, tmp_path / "reads"), classes=3, buffer_size=8)
    batches = list(loader)
    shares = reads(tmp_path / "reads")
    assert set(shares) == {"rank0-worker0", "rank0-worker1"}
    assert all(shares.values())  # both workers read part of the stream
    assert sorted(shares["rank0-worker0"] + shares["rank0-worker1"]) == list(range(len(codes)))
    check_batches(batches, key, codes)
    served = {i for batch in batches for i in batch["id"].tolist()}
    assert served == set(range(len(codes)))  # every item read was served
    assert loader.batches_received == len(batches)


@pytest.mark.parametrize("kind", ["plain", "datasets"])
def test_ranks_times_workers_read_disjoint_shares_whose_union_is_the_stream(kind, tmp_path):
    codes = class_codes(COUNTS)
    (tmp_path / "reads").mkdir()
    for rank in range(2):
        source, key = source_of(kind, codes, tmp_path)
        plain = DataLoader(source, batch_size=BATCH_SIZE, num_workers=2)
        # wait = 3 * 16 items, more than a share holds: every class present in a share is
        # waited for (a share without one would serve batches of the other two)
        loader = balance(plain, labels=RecordReads(key, tmp_path / "reads", rank), classes=3,
                         buffer_size=16, num_replicas=2, rank=rank)
        check_batches(list(loader), key, codes)
    shares = reads(tmp_path / "reads")
    assert len(shares) == 4 and all(shares.values())
    assert sorted(i for ids in shares.values() for i in ids) == list(range(len(codes)))


def test_the_batches_are_a_function_of_seed_epoch_and_share():
    codes = class_codes(COUNTS)

    def epoch_batches(seed, epoch, num_workers=2):
        loader = balance(DataLoader(Records(codes), batch_size=BATCH_SIZE,
                                    num_workers=num_workers),
                         labels="label", classes=3, buffer_size=8, seed=seed)
        loader.set_epoch(epoch)
        return [batch["id"].tolist() for batch in loader]

    assert epoch_batches(3, 1) == epoch_batches(3, 1)
    assert epoch_batches(3, 1) != epoch_batches(3, 2)
    assert epoch_batches(3, 1) != epoch_batches(4, 1)


def test_set_epoch_reaches_the_source():
    source = Records(class_codes(COUNTS))
    stream = BalancedStream(source, batch_size=BATCH_SIZE, classes=3)
    stream.set_epoch(5)
    list(DataLoader(stream, batch_size=BATCH_SIZE))
    assert source.epochs_set == [5]


def test_a_hugging_face_stream_with_too_few_shards_for_the_workers_is_refused():
    stream = hf_stream(class_codes(COUNTS), shards=1)
    with pytest.raises(ValueError, match=r"the Hugging Face datasets stream has 1 shard\(s\) for "
                                         r"this rank but the loader has num_workers=2"):
        balance(DataLoader(stream, batch_size=BATCH_SIZE, num_workers=2), classes=3)
    with pytest.raises(ValueError, match=r"split='position' with a Hugging Face datasets stream "
                                         r"and num_workers > 1"):
        balance(DataLoader(hf_stream(class_codes(COUNTS), shards=4), batch_size=BATCH_SIZE,
                           num_workers=2), classes=3, split="position")


def test_a_webdataset_pipeline_that_cannot_split_ranks_as_asked_is_refused(tmp_path):
    paths = write_shards(tmp_path, class_codes(COUNTS), 4)
    with pytest.raises(ValueError, match=r"splits by node with single_node_only, which refuses "
                                         r"num_replicas=2; build it with "
                                         r"nodesplitter=wds.split_by_node"):
        balance(DataLoader(wds_pipeline(paths, nodes=False), batch_size=BATCH_SIZE),
                labels="cls", classes=3, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match=r"split_by_node, which sees rank 0 of 1 .* but the "
                                         r"stream has rank=1, num_replicas=2"):
        balance(DataLoader(wds_pipeline(paths), batch_size=BATCH_SIZE), labels="cls",
                classes=3, num_replicas=2, rank=1)


def test_split_source_trusts_a_source_that_splits_itself():
    codes = class_codes(COUNTS)

    class OwnSplit(Records):  # reads only its worker's half, as a self-splitting source does
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            return (item for item in super().__iter__()
                    if info is None or item["id"] % info.num_workers == info.id)

    for split, expected in (("source", len(codes)), ("position", len(codes) // 2)):
        loader = balance(DataLoader(OwnSplit(codes), batch_size=BATCH_SIZE, num_workers=2),
                         labels="label", classes=3, split=split)
        served = {i for batch in loader for i in batch["id"].tolist()}
        # position on top of the source's own split keeps only the items read twice over
        assert len(served) == expected
