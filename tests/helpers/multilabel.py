"""Hypothesis strategies and resume checks shared by the multi-label sampler tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def matrices(min_rows=2, max_rows=40, min_labels=2, max_labels=5):
    """0/1 label matrices (uint8) in which every label has at least one positive."""
    shape = st.tuples(st.integers(min_rows, max_rows), st.integers(min_labels, max_labels))
    return hnp.arrays(np.uint8, shape, elements=st.integers(0, 1)).filter(
        lambda m: m.any(axis=0).all())


def check_resumes_everywhere(make, epoch, full, convert=list):
    """A checkpoint after every batch of ``epoch`` (``full``, its batches) restores into a fresh
    ``make()`` that yields exactly the remaining batches (``convert`` maps a batch to compare)."""
    for taken in range(len(full)):
        sampler = make()
        sampler.set_epoch(epoch)
        iterator = iter(sampler)
        for _ in range(taken):
            next(iterator)
        restored = make()
        restored.load_state_dict(sampler.state_dict())
        assert len(restored) == len(full) - taken
        restored.set_epoch(epoch)
        assert [convert(batch) for batch in restored] == full[taken:]
