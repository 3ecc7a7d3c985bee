"""The guarantees of the stream buffers (balancer.streams._buffers.StreamBuffers), over class
mixes, buffer sizes, waits and batch sizes drawn by hypothesis.

Each test runs the buffers on a stream of item ids with given class codes and checks one
guarantee stated in BalancedStream's docstring against what was served.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.streams._buffers import StreamBuffers


@dataclass
class Run:
    codes: list[int]
    num_classes: int
    batch_size: int
    buffer_size: int
    wait: int
    lookahead: int = 1
    batches: list[list[int]] = field(default_factory=list)
    read_at: list[int] = field(default_factory=list)  # items read when each batch was served
    held_after: list[tuple[bool, int]] = field(default_factory=list)  # (warming, held) per read
    reuse_after: list[list[list[int]]] = field(default_factory=list)  # buffers after each batch
    buffers: StreamBuffers | None = None
    warned: list[str] = field(default_factory=list)


def run(codes, num_classes, batch_size, buffer_size, wait, lookahead=1, seed=0) -> Run:
    record = Run(list(codes), num_classes, batch_size, buffer_size, wait, lookahead)
    buffers = StreamBuffers(list(range(num_classes)), batch_size, buffer_size, wait,
                            np.random.default_rng(seed), lookahead=lookahead)
    record.buffers = buffers

    def keep(batch):
        record.batches.append(batch)
        record.read_at.append(buffers.items_read)
        record.reuse_after.append([list(b) for b in buffers._reuse])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for item, code in enumerate(codes):
            for batch in buffers.add(item, code):
                keep(batch)
            record.held_after.append((buffers.warming_up, buffers.items_held))
        for batch in buffers.finish():
            keep(batch)
    record.warned = [str(w.message) for w in caught]
    return record


@st.composite
def streams(draw, min_length=0):
    num_classes = draw(st.integers(2, 6))
    batch_size = draw(st.integers(2, 3 * num_classes + 3))  # fewer than the classes too
    buffer_size = draw(st.integers(1, 6))
    wait = draw(st.integers(batch_size, batch_size + 3 * num_classes * buffer_size))
    lookahead = draw(st.integers(1, 4))
    weights = np.array(draw(st.lists(st.integers(0, 20), min_size=num_classes,
                                     max_size=num_classes)), dtype=float) + 0.05
    length = draw(st.integers(max(min_length, batch_size), 160))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    codes = rng.choice(num_classes, size=length, p=weights / weights.sum()).tolist()
    return codes, num_classes, batch_size, buffer_size, wait, lookahead


def seen_before(record: Run, read: int) -> set[int]:
    return set(record.codes[:read])


@settings(max_examples=150, deadline=None)
@given(streams())
def test_every_batch_is_full_and_balanced_over_the_classes_seen(case):
    record = run(*case)
    batch_size = record.batch_size
    for batch, read in zip(record.batches, record.read_at, strict=True):
        assert len(batch) == batch_size
        seen = seen_before(record, read)
        counts = Counter(record.codes[item] for item in batch)
        low, high = batch_size // len(seen), -(-batch_size // len(seen))
        assert set(counts) <= seen  # no class not seen yet
        if low:  # B >= n: every class seen takes part
            assert set(counts) == seen
        assert all(low <= n <= high for n in counts.values()), counts


@settings(max_examples=150, deadline=None)
@given(streams())
def test_all_classes_balanced_from_the_first_batch_when_each_appears_within_wait(case):
    codes, num_classes, batch_size, _, wait, _ = case
    record = run(*case)
    if set(codes[:wait]) != set(range(num_classes)):
        return
    assert not record.warned
    low, high = batch_size // num_classes, -(-batch_size // num_classes)
    for batch in record.batches:
        counts = Counter(codes[item] for item in batch)
        assert low == 0 or sorted(counts) == list(range(num_classes))
        assert all(low <= counts[c] <= high for c in range(num_classes))
    # The larger shares rotate: any num_classes consecutive batches give each class exactly
    # batch_size mod num_classes of them.
    extra = batch_size % num_classes
    per_batch = np.array([[Counter(codes[i] for i in b)[c] for c in range(num_classes)]
                          for b in record.batches])
    for start in range(len(record.batches) - num_classes + 1):
        window = per_batch[start:start + num_classes] - low
        assert (window.sum(axis=0) == extra).all()


@settings(max_examples=150, deadline=None)
@given(streams())
def test_the_first_batch_comes_within_the_warm_up_bounds(case):
    codes, num_classes, batch_size, _, wait, lookahead = case
    record = run(*case)
    all_seen_at = next((i + 1 for i in range(len(codes))
                        if len(set(codes[:i + 1])) == num_classes), len(codes) + 1)
    end = max(batch_size, min(all_seen_at, wait))
    latest = max(end, lookahead * max(batch_size, num_classes))
    # A pass ending first serves its first batch at its end.
    assert min(end, len(codes)) <= record.read_at[0] <= min(latest, len(codes))
    if lookahead == 1 and end <= len(codes):
        assert record.read_at[0] == end  # pigeonhole: some class holds its share right then
    missing = set(range(num_classes)) - set(codes[:min(end, len(codes))])
    if missing:
        assert len(record.warned) == 1
        assert str(sorted(missing)) in record.warned[0]
    else:
        assert not record.warned


@settings(max_examples=150, deadline=None)
@given(streams())
def test_every_item_read_is_served_fresh_exactly_once(case):
    record = run(*case)
    buffers = record.buffers
    served = Counter(item for batch in record.batches for item in batch)
    assert set(served) == set(range(len(record.codes)))  # nothing read is dropped
    assert buffers.fresh_served == len(record.codes) and buffers.fresh_held == 0
    assert buffers.fresh_served + buffers.reused == record.batch_size * len(record.batches)
    length, batch_size = len(record.codes), record.batch_size
    assert -(-length // batch_size) <= len(record.batches)
    if batch_size >= record.num_classes:
        assert len(record.batches) <= length / (batch_size // record.num_classes) \
            + 2 * record.lookahead - 1


@settings(max_examples=150, deadline=None)
@given(streams())
def test_items_held_stay_within_the_memory_bound(case):
    _, num_classes, batch_size, buffer_size, wait, lookahead = case
    record = run(*case)
    fresh = lookahead * max(batch_size, num_classes)
    assert record.buffers.peak_held <= num_classes * buffer_size + max(wait, fresh)
    for warming, held in record.held_after:
        if not warming:  # the next read can add one item before the buffers serve
            assert held + 1 <= num_classes * buffer_size + fresh
    assert max(held for _, held in record.held_after) <= record.buffers.peak_held


@settings(max_examples=150, deadline=None)
@given(streams())
def test_a_buffered_item_comes_back_only_after_the_rest_of_its_buffer(case):
    record = run(*case)
    codes = record.codes
    # Per class: the batches serving each item; between two batches serving an item, every
    # other item in its class's buffer after both of them (so all along: an item leaves the
    # buffer only by being dropped, and never comes back) was served too.
    for cls in range(record.num_classes):
        served_in: dict[int, list[int]] = {}
        for k, batch in enumerate(record.batches):
            for item in set(batch):
                if codes[item] == cls:
                    served_in.setdefault(item, []).append(k)
        for item, ks in served_in.items():
            for first, second in itertools.pairwise(ks):
                if second == first + 1:
                    continue
                kept = set(record.reuse_after[first][cls]) & set(record.reuse_after[second][cls])
                for other in kept - {item}:
                    assert any(first <= k <= second for k in served_in[other]), (item, other)


@settings(max_examples=60, deadline=None)
@given(streams(), st.integers(0, 2**32 - 1))
def test_the_batches_are_a_function_of_the_generator_seed(case, seed):
    assert run(*case, seed=seed).batches == run(*case, seed=seed).batches


def test_a_balanced_stream_is_served_about_once_with_lookahead():
    # Equal frequencies, random order: with L = 4 the batches are close to N / B (each item
    # about once); with L = 1 every class that happens to be ahead forces a batch.
    codes = np.random.default_rng(1).integers(0, 10, size=6400).tolist()
    ideal = 10 * max(Counter(codes).values()) / 64
    eager = len(run(codes, 10, 64, 16, 160, lookahead=1).batches)
    paced = len(run(codes, 10, 64, 16, 160, lookahead=4).batches)
    assert paced < 1.2 * ideal < 1.5 * ideal < eager


def test_a_rare_item_is_reused_round_robin_not_hammered():
    # Class 1 has 3 items, all early; every batch needs 2 of them: they rotate evenly.
    codes = [1, 1, 1] + [0] * 60
    record = run(codes, 2, 4, buffer_size=8, wait=8)
    rare = Counter(item for batch in record.batches for item in batch if codes[item] == 1)
    assert max(rare.values()) - min(rare.values()) <= 1


def test_a_class_missing_at_the_end_of_the_warm_up_is_warned_once_and_joins_later():
    codes = [0, 1] * 10 + [2] + [0, 1, 2] * 4
    record = run(codes, 3, 6, buffer_size=2, wait=8)
    assert len(record.warned) == 1
    assert "class(es) [2]" in record.warned[0] and "first 8 items" in record.warned[0]
    joined = codes.index(2) + 1
    for batch, read in zip(record.batches, record.read_at, strict=True):
        counts = Counter(codes[item] for item in batch)
        assert (2 in counts) == (read >= joined)


def test_a_pass_shorter_than_one_batch_is_refused_before_serving_anything():
    buffers = StreamBuffers([0, 1], 8, 4, 8, np.random.default_rng(0), where="the test stream")
    served = [b for item in range(7) for b in buffers.add(item, item % 2)]
    assert served == []
    with pytest.raises(ValueError, match=r"the test stream gave only 7 item\(s\) in this pass, "
                                         r"fewer than one batch \(batch_size=8\)"):
        list(buffers.finish())


def test_more_classes_than_a_batch_holds_rotate_one_slot_each():
    # 7 classes, batches of 3: one item of each of 3 classes; over any 7 consecutive batches
    # every class has exactly 3 slots, and the frequent class sets the pace.
    codes = np.random.default_rng(2).choice(7, size=700, p=[0.4] + [0.1] * 6).tolist()
    record = run(codes, 7, 3, buffer_size=4, wait=28, lookahead=4)
    slots = np.array([[Counter(codes[i] for i in b)[c] for c in range(7)]
                      for b in record.batches])
    assert (slots.max(axis=1) == 1).all() and (slots.sum(axis=1) == 3).all()
    for start in range(len(slots) - 6):
        assert (slots[start:start + 7].sum(axis=0) == 3).all()
    ideal = 7 * max(Counter(codes).values()) / 3
    assert len(record.batches) < 1.15 * ideal
