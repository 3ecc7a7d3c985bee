"""The items a balanced stream holds stay within C * buffer_size + max(wait, lookahead * B),
however long the stream: measured on the stream itself and reported by each loader worker."""

from __future__ import annotations

from helpers.streams import Records, class_codes
from torch.utils.data import DataLoader

from balancer import BalancedStream, balance

CODES = class_codes((4000, 600, 40), seed=3)
SETTINGS = dict(classes=3, labels="label", buffer_size=8, lookahead=2)
BATCH_SIZE = 6
BOUND = 3 * 8 + max(3 * 8, 2 * BATCH_SIZE)  # wait defaults to C * buffer_size


def test_a_long_stream_holds_at_most_the_bound():
    stream = BalancedStream(Records(CODES), batch_size=BATCH_SIZE, **SETTINGS)
    highest = 0
    for _ in DataLoader(stream, batch_size=BATCH_SIZE):
        highest = max(highest, stream.items_held)
    assert highest <= stream.peak_held <= BOUND
    assert stream.peak_held >= 3 * 8  # the reuse buffers did fill: the bound is not idle
    assert stream.items_held <= 3 * 8  # after the pass: no fresh item left, only the buffers


def test_each_worker_reports_its_peak_within_the_bound():
    loader = balance(DataLoader(Records(CODES), batch_size=BATCH_SIZE, num_workers=2),
                     **SETTINGS)
    batches = sum(1 for _ in loader)
    assert batches >= len(CODES) // BATCH_SIZE
    assert sorted(loader.peak_items_held) == [0, 1]
    assert all(3 * 8 <= peak <= BOUND for peak in loader.peak_items_held.values())
