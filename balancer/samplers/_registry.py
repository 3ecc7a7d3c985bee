"""The sampler kinds, one entry each: name, class, label kind, state id and how to build one.

Every place that picks a sampler by name (:func:`balancer.balance`, the framework adapters) or
names the kind a checkpoint came from reads this table; each kind's module registers its own
entry, next to its class, so adding a kind is one module plus its import in
``balancer/samplers/__init__.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from balancer._distributed import shared_seed

__all__ = ["SamplerKind", "register", "sampler_kind", "sampler_kinds"]

LabelKind = Literal["single", "multi"]


@dataclass(frozen=True)
class SamplerKind:
    """One kind of balancer batch sampler, as :func:`balancer.balance` knows it.

    Attributes:
        name: what ``balance(sampler=...)`` and the adapters accept (``"balanced"``).
        sampler_class: the batch sampler class, a ``PlanBatchSampler`` subclass built as
            ``sampler_class(targets, batch_size, *, seed, drop_last, schedule, num_replicas,
            rank, batch_type, **options)``.
        labels: ``"single"`` (one class per item) or ``"multi"`` (multi-label targets).
        state_id: what the sampler's ``state_dict()`` records in ``settings["plan"]``, ``None``
            for none (the balanced sampler, whose states predate the key); checkpoints are
            checked against it, so it never changes once released.
        read_labels: ``read_labels(dataset, labels)`` finds the targets ``sampler_class``
            takes, as :func:`balancer.labels_of` does for this label kind.
    """

    name: str
    # A PlanBatchSampler subclass; each kind's constructor takes its own positional arguments.
    sampler_class: type[Any]
    labels: LabelKind
    state_id: str | None
    read_labels: Callable[[Any, Any], Any] = field(repr=False)

    @property
    def options(self) -> frozenset[str]:
        """The keywords ``sampler_class`` takes."""
        return frozenset(inspect.signature(self.sampler_class.__init__).parameters)

    def build(self, dataset: Any, labels: Any, batch_size: int, *, seed: int | None,
              drop_last: bool, schedule: Any, num_replicas: int | None, rank: int | None,
              batch_type: str | None = None, options: Mapping[str, Any] | None = None) -> Any:
        """A sampler of this kind over ``dataset``, as :func:`balancer.balance` builds it.

        ``labels`` is read with :attr:`read_labels`; ``seed=None`` is drawn once and shared
        across ranks; ``batch_type=None`` picks ``"numpy"`` for a dataset that declares
        ``supports_index_arrays = True`` and ``"list"`` otherwise; ``options`` are further
        keywords of :attr:`sampler_class`.
        """
        if batch_type is None:
            batch_type = "numpy" if getattr(dataset, "supports_index_arrays", False) is True \
                else "list"
        targets = self.read_labels(dataset, labels)
        return self.sampler_class(
            targets, batch_size, seed=shared_seed(seed), drop_last=drop_last, schedule=schedule,
            num_replicas=num_replicas, rank=rank, batch_type=batch_type, **dict(options or {}))


_KINDS: dict[str, SamplerKind] = {}


def register(kind: SamplerKind) -> SamplerKind:
    """Add ``kind`` to the table; its name, class and state id must be new."""
    for other in _KINDS.values():
        clashes = [what for what in ("name", "sampler_class", "state_id")
                   if getattr(other, what) == getattr(kind, what)]
        if clashes:
            raise ValueError(f"sampler kind {kind.name!r} has the {', '.join(clashes)} of the "
                             f"registered kind {other.name!r}; each must be its own")
    _KINDS[kind.name] = kind
    return kind


def sampler_kinds() -> tuple[SamplerKind, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS.values())


def sampler_kind(sampler: str | type, options: Mapping[str, Any] | None = None) -> SamplerKind:
    """The kind ``sampler`` names (a kind's name or its class).

    ``options`` (further keywords for the sampler) are checked against that kind, so an option
    of another kind fails here, naming the kinds that take it.
    """
    by_class = {kind.sampler_class: kind for kind in _KINDS.values()}
    if isinstance(sampler, str) and sampler in _KINDS:
        kind = _KINDS[sampler]
    elif isinstance(sampler, type) and sampler in by_class:
        kind = by_class[sampler]
    else:
        raise ValueError(
            f"sampler should be one of {sorted(_KINDS)} or one of those sampler classes, but got "
            f"sampler={sampler!r}"
        )
    given = options or {}
    for option in given:
        if option not in kind.options:
            # Every kind that takes it (samples_per_epoch: 'balanced' and 'label-balanced').
            others = [other.name for other in _KINDS.values() if option in other.options]
            fix = (f"pass {' or '.join(f'sampler={n!r}' for n in others)} or remove {option}="
                   if others else f"remove {option}=")
            raise TypeError(
                f"{option} is not an option of {kind.sampler_class.__name__} "
                f"(sampler={sampler!r}), but got {option}={given[option]!r}; {fix}"
            )
    return kind


def kind_of_class(cls: type) -> SamplerKind | None:
    """The kind whose class ``cls`` is or derives from (the nearest in its MRO), if any."""
    by_class = {kind.sampler_class: kind for kind in _KINDS.values()}
    return next((by_class[base] for base in cls.__mro__ if base in by_class), None)


def describe_state_id(state_id: Any) -> str:
    """The sampler a state's ``settings['plan']`` comes from, in words."""
    if state_id is None or isinstance(state_id, str):  # anything else is corrupt
        for kind in _KINDS.values():
            if kind.state_id == state_id:
                return f"a {kind.sampler_class.__name__}"
    return f"a sampler with plan {state_id!r}"
