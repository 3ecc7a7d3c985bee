"""What the loader needs from ``torch.distributed``: one seed shared by every rank."""

from __future__ import annotations

import secrets

import torch.distributed as dist

from balancer._validation import check_int

__all__ = ["is_distributed", "shared_seed"]


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised in this process."""
    return dist.is_available() and dist.is_initialized()


def shared_seed(seed: int | None) -> int:
    """``seed`` itself, or for ``None`` a fresh seed that every rank agrees on.

    A fresh seed is drawn from the operating system's entropy (never from the global ``random``,
    numpy or torch generators, which user code may have seeded identically on every run). Under an
    initialised process group, rank 0's draw is broadcast, so every rank builds the same plan;
    all ranks must then call this together, as they do when they build their loaders.
    """
    if seed is not None:
        return check_int("seed", seed, minimum=0, maximum=2**64 - 1,
                         fix="pass a non-negative integer, or None for a fresh random seed")
    fresh = secrets.randbits(63)
    if is_distributed() and dist.get_world_size() > 1:
        # broadcast_object_list places the payload on the device the backend needs (CPU for
        # gloo, the current CUDA device for NCCL).
        payload = [fresh]
        dist.broadcast_object_list(payload, src=0)
        fresh = int(payload[0])
    return fresh
