"""The batch samplers, one module per kind, and the registry that names them.

Words used throughout:

- **the plan**: the sequence of batches a sampler yields for a ``(seed, epoch)``, all ranks'
  batches together (rank ``r`` of ``R`` takes global batches ``r, r + R, ...``). It is a pure
  function of the seed, the epoch, the labels and the settings;
- **slots**: the plan flattened, one dataset index per slot, before it is cut into batches;
- **a kind**: one way of filling the slots of a balanced epoch (``"balanced"``,
  ``"label-balanced"``, ``"repeat-factor"``), i.e. one sampler class and its registry entry.

Modules:

- ``_base``: :class:`PlanBatchSampler`, what every kind shares: epochs and phases (fine-tune
  epochs are one shuffled pass at the true frequencies), cutting slots into batches, sharding
  whole batches across replicas, ``state_dict`` / ``load_state_dict``;
- ``_buffers``: :class:`~balancer.samplers._buffers.GroupedCycles`, circular buffers addressed
  by draw number, which the per-class and per-bucket buffers build on;
- ``_balanced``, ``_label_balanced``, ``_repeat_factor``: one kind each, with its buffers or
  rounding and its registry entry;
- ``_registry``: the table of kinds (:class:`SamplerKind`), which :func:`balancer.balance`,
  the framework adapters and the checkpoint checks read.

Adding a kind: a module here that defines the sampler (a :class:`PlanBatchSampler` subclass)
and calls :func:`register` for it, and its import below.
"""

# Importing a kind's module registers the kind.
from balancer.samplers._balanced import BalancedBatchSampler
from balancer.samplers._base import BatchType, PlanBatchSampler
from balancer.samplers._label_balanced import MultiLabelBalancedSampler
from balancer.samplers._registry import SamplerKind, register, sampler_kind, sampler_kinds
from balancer.samplers._repeat_factor import RepeatFactorSampler

__all__ = [
    "BalancedBatchSampler",
    "BatchType",
    "MultiLabelBalancedSampler",
    "PlanBatchSampler",
    "RepeatFactorSampler",
    "SamplerKind",
    "register",
    "sampler_kind",
    "sampler_kinds",
]
