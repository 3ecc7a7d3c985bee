"""The framework adapters drive samplers and loaders through public, documented methods only:
``batches_in_epoch``, ``state_at`` and ``BalancedDataLoader.batches_received``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from balancer import BalancedBatchSampler, FineTuneSchedule, balance

INTEGRATIONS = Path(__file__).resolve().parents[1] / "balancer" / "integrations"
LABELS = [0] * 90 + [1] * 10


def test_batches_in_epoch_is_the_whole_epoch_whatever_the_resume_position():
    sampler = BalancedBatchSampler(LABELS, batch_size=10, seed=0, num_replicas=2, rank=1,
                                   schedule=FineTuneSchedule(3, 1))
    assert [sampler.batches_in_epoch(e) for e in range(3)] == [9, 9, 5]
    sampler.set_epoch(1)
    iterator = iter(sampler)
    next(iterator)
    sampler.load_state_dict(sampler.state_at(1))
    assert len(sampler) == 8  # what the resumed iteration yields
    assert sampler.batches_in_epoch() == 9 == sampler.batches_in_epoch(1)
    with pytest.raises(ValueError, match=r"epoch=-1"):
        sampler.batches_in_epoch(-1)


def test_state_at_is_the_state_after_that_many_batches():
    sampler = BalancedBatchSampler(LABELS, batch_size=10, seed=0, schedule=FineTuneSchedule(2, 1))
    iterator = iter(sampler)
    for done in range(1, 4):
        next(iterator)
        assert sampler.state_at(done) == sampler.state_dict()
    # The end of an epoch is the start of the next, as for state_dict.
    assert (sampler.state_at(18)["epoch"], sampler.state_at(18)["batches_done"]) == (1, 0)
    with pytest.raises(ValueError, match=r"batches_done=19"):
        sampler.state_at(19)


def test_the_loader_counts_the_batches_its_loop_received():
    loader = balance(DataLoader(list(range(100)), batch_size=10), LABELS, seed=0)
    iterator = iter(loader)
    next(iterator), next(iterator)
    assert loader.batches_received == 2
    assert loader.state_dict() == loader.batch_sampler.state_at(2)


@pytest.mark.parametrize("path", sorted(INTEGRATIONS.glob("*.py")), ids=lambda p: p.name)
def test_adapters_reach_no_private_attribute_of_balancer_objects(path):
    """Each adapter touches only its own privates (``self._x``, ``super()._x``: the framework
    class it extends); a sampler's
    or loader's private attribute (``sampler._x``) would break silently when it is renamed."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = sorted({f"{ast.unparse(node.value)}.{node.attr}" for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                      and not node.attr.startswith("__")
                      and ast.unparse(node.value) not in ("self", "super()")})
    assert private == []
