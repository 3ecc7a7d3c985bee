"""A balanced stream resumes exactly: a loader restored from a checkpoint taken after any batch
serves exactly the batches the loop had not received, in the same order -- through balance()'s
loader (0 or 2 workers, in order or not), through torchdata's StatefulDataLoader over a
BalancedStream, and with webdataset and Hugging Face sources."""

from __future__ import annotations

import pytest
from helpers.streams import Records, class_codes, hf_stream, wds_pipeline, write_shards
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from balancer import BalancedStream, FineTuneSchedule, balance

COUNTS = (40, 14, 6)
BATCH_SIZE = 6


def ids(batch):
    return batch["id"].tolist()


def make_loader(source, num_workers=0, **kwargs):
    return balance(DataLoader(source, batch_size=BATCH_SIZE, num_workers=num_workers,
                              **kwargs.pop("dataloader", {})),
                   labels=kwargs.pop("labels", "label"), classes=3, buffer_size=4, seed=7,
                   **kwargs)


def check_resume_everywhere(build, epoch=1):
    """Stop after every batch of ``epoch``, checkpoint, restore into a new loader."""
    loader = build()
    loader.set_epoch(epoch)
    full = [ids(b) for b in loader]
    assert len(full) >= 5
    for stop in range(len(full) + 1):
        loader = build()
        loader.set_epoch(epoch)
        iterator = iter(loader)
        seen = [ids(next(iterator)) for _ in range(stop)]
        state = loader.state_dict()
        del iterator
        restored = build()
        restored.load_state_dict(state)
        restored.set_epoch(state["epoch"])
        rest = [ids(b) for b in restored]
        if stop == len(full) and state["epoch"] == epoch + 1:
            rest = []  # the finished epoch's checkpoint is the next epoch's start
        assert seen + rest == full, stop


@pytest.mark.parametrize("num_workers", [0, 2])
def test_balance_loader_resumes_at_every_batch(num_workers):
    codes = class_codes(COUNTS)
    check_resume_everywhere(lambda: make_loader(Records(codes), num_workers))


def test_balance_loader_resumes_at_every_batch_out_of_order():
    codes = class_codes(COUNTS)
    check_resume_everywhere(lambda: make_loader(Records(codes), 2,
                                                dataloader={"in_order": False}))


def test_persistent_workers_follow_set_epoch_and_resume():
    codes = class_codes(COUNTS)
    persistent = make_loader(Records(codes), 2, dataloader={"persistent_workers": True})
    fresh = make_loader(Records(codes), 2)
    for epoch in (0, 1, 0):
        persistent.set_epoch(epoch)
        fresh.set_epoch(epoch)
        assert [ids(b) for b in persistent] == [ids(b) for b in fresh], epoch
    full = [ids(b) for b in fresh]  # epoch 0
    persistent.set_epoch(0)
    iterator = iter(persistent)
    seen = [ids(next(iterator)) for _ in range(3)]
    state = persistent.state_dict()
    del iterator
    persistent.load_state_dict(state)  # the same workers resume
    assert seen + [ids(b) for b in persistent] == full


def test_a_checkpoint_after_the_last_batch_is_the_next_epochs_start():
    loader = make_loader(Records(class_codes(COUNTS)), 2, schedule=FineTuneSchedule(3))
    loader.set_epoch(0)
    list(loader)
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == [0, 0]
    restored = make_loader(Records(class_codes(COUNTS)), 2, schedule=FineTuneSchedule(3))
    restored.load_state_dict(state)
    assert restored.epoch == 1


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stateful_dataloader_over_a_balanced_stream_resumes_at_every_batch(num_workers):
    codes = class_codes(COUNTS)

    def build():
        stream = BalancedStream(Records(codes), batch_size=BATCH_SIZE, classes=3,
                                labels="label", buffer_size=4, seed=7)
        loader = StatefulDataLoader(stream, batch_size=BATCH_SIZE, num_workers=num_workers)
        loader.stream = stream
        return loader

    epoch = 1
    reference = build()
    reference.stream.set_epoch(epoch)
    full = [ids(b) for b in reference]
    for stop in range(len(full) + 1):
        loader = build()
        loader.stream.set_epoch(epoch)
        iterator = iter(loader)
        seen = [ids(next(iterator)) for _ in range(stop)]
        state = loader.state_dict()
        del iterator
        restored = build()
        restored.stream.set_epoch(epoch)
        restored.load_state_dict(state)
        assert seen + [ids(b) for b in restored] == full, stop


def test_a_plain_dataloader_over_a_stream_resumes_from_the_streams_state():
    codes = class_codes(COUNTS)

    def build():
        return BalancedStream(Records(codes), batch_size=BATCH_SIZE, classes=3,
                              labels="label", buffer_size=4, seed=7)

    full = [ids(b) for b in DataLoader(build(), batch_size=BATCH_SIZE)]
    for stop in range(len(full)):
        stream = build()
        iterator = iter(DataLoader(stream, batch_size=BATCH_SIZE))
        seen = [ids(next(iterator)) for _ in range(stop)]
        state = stream.state_dict()
        assert state["items_done"] == stop * BATCH_SIZE
        restored = build()
        restored.load_state_dict(state)
        assert seen + [ids(b) for b in DataLoader(restored, batch_size=BATCH_SIZE)] == full


def test_webdataset_and_hugging_face_streams_resume_mid_epoch(tmp_path):
    codes = class_codes(COUNTS)
    paths = write_shards(tmp_path, codes, 4)
    for build in (lambda: make_loader(wds_pipeline(paths), 2, labels="cls"),
                  lambda: make_loader(hf_stream(codes, 4), 2)):
        loader = build()
        full = [ids(b) for b in loader]
        loader = build()
        iterator = iter(loader)
        seen = [ids(next(iterator)) for _ in range(5)]
        state = loader.state_dict()
        del iterator
        restored = build()
        restored.load_state_dict(state)
        assert seen + [ids(b) for b in restored] == full


def test_a_state_from_other_settings_or_workers_is_refused():
    codes = class_codes(COUNTS)
    state = make_loader(Records(codes), 2).state_dict()
    with pytest.raises(ValueError, match=r"state was saved by a loader with num_workers=2 "
                                         r"\(counting the main process as one\), but this one "
                                         r"has 1"):
        make_loader(Records(codes), 0).load_state_dict(state)
    other = balance(DataLoader(Records(codes), batch_size=BATCH_SIZE, num_workers=2),
                    labels="label", classes=3, buffer_size=5, seed=7)
    with pytest.raises(ValueError, match=r"state was taken from a stream with other settings "
                                         r"\(buffer_size: saved 4, here 5, wait: saved 12, here 15\)"):
        other.load_state_dict(state)
    with pytest.raises(TypeError, match=r"state should be a dict from BalancedStream"):
        make_loader(Records(codes)).load_state_dict([1])
    broken = dict(state, batches_done=[1, -1])
    with pytest.raises(ValueError, match=r"state\['batches_done'\], \['ended'\], \['turn'\] or "
                                         r"\['padded'\] is not what state_dict\(\) writes"):
        make_loader(Records(codes), 2).load_state_dict(broken)
    # Re-served batches are counted only once every worker's pass has ended.
    with pytest.raises(ValueError, match=r"\['padded'\] is not what state_dict\(\) writes"):
        make_loader(Records(codes), 2).load_state_dict(dict(state, padded=1))


def test_advancing_an_iteration_ended_by_set_epoch_is_refused():
    loader = make_loader(Records(class_codes(COUNTS)))
    iterator = iter(loader)
    next(iterator)
    loader.set_epoch(1)
    with pytest.raises(RuntimeError, match=r"this iteration of the loader was ended by "
                                           r"set_epoch\(1\)"):
        next(iterator)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=4),
       batch_size=st.integers(4, 9), buffer_size=st.integers(1, 6),
       lookahead=st.integers(1, 4), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_a_stream_resumes_exactly_over_class_mixes_and_sizes(counts, batch_size, buffer_size,
                                                             lookahead, seed, data):
    codes = class_codes(tuple(counts), seed=seed % 1000)
    if len(codes) < batch_size or batch_size < len(counts):
        return

    def build():
        return BalancedStream(Records(codes), batch_size=batch_size, classes=len(counts),
                              labels="label", buffer_size=buffer_size, lookahead=lookahead,
                              seed=seed)

    full = [item["id"] for item in build()]
    assert len(full) % batch_size == 0
    stop = data.draw(st.integers(0, len(full) // batch_size)) * batch_size
    stream = build()
    iterator = iter(stream)
    seen = [next(iterator)["id"] for _ in range(stop)]
    restored = build()
    restored.load_state_dict(stream.state_dict())
    assert seen + [item["id"] for item in restored] == full
