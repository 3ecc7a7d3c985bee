"""The stream buffers' running counters (balancer.streams._buffers.StreamBuffers): the hot path
keeps the items held as a count updated per item and per batch instead of summing over the
classes, so the count must equal that sum after every item read and every batch served."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.streams._buffers import StreamBuffers


def summed_held(buffers: StreamBuffers) -> int:
    return sum(len(fresh) for fresh in buffers._fresh) + sum(len(r) for r in buffers._reuse)


@settings(max_examples=60, deadline=None)
@given(num_classes=st.integers(1, 8), batch_size=st.integers(1, 12),
       buffer_size=st.integers(1, 6), lookahead=st.integers(1, 4), extra_wait=st.integers(0, 20),
       codes=st.lists(st.integers(0, 7), min_size=12, max_size=200), seed=st.integers(0, 99))
def test_items_held_and_its_peak_equal_the_sums_over_the_classes(
        num_classes, batch_size, buffer_size, lookahead, extra_wait, codes, seed):
    codes = [code % num_classes for code in codes]
    buffers = StreamBuffers(list(range(num_classes)), batch_size, buffer_size,
                            batch_size + extra_wait, np.random.default_rng(seed),
                            lookahead=lookahead)
    peak = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes missing from short streams
        for item, code in enumerate(codes):
            peak = max(peak, summed_held(buffers) + 1)  # the item added counts at once
            for _ in buffers.add(item, code):
                assert buffers.items_held == summed_held(buffers)
            assert buffers.items_held == summed_held(buffers)
            assert buffers.fresh_held == sum(len(fresh) for fresh in buffers._fresh)
        if len(codes) >= batch_size:
            for _ in buffers.finish():
                assert buffers.items_held == summed_held(buffers)
            assert buffers.fresh_held == 0
    assert buffers.peak_held == peak
