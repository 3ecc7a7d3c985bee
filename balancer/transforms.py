"""Batch augmentations for image tensors: one call per batch, every draw from an explicit generator.

A per-item transform costs a Python call (and a few small tensor operations) per sample; on
28x28 images that overhead, not the arithmetic, bounds training. The transforms here take a whole
``(B, C, H, W)`` batch and draw all of its randomness in two calls, so they fit
``MedMNIST(batch_transform=...)`` (see :class:`balancer.MedMNIST`) or a training loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from balancer._validation import check_int

__all__ = ["RandomFlipShift", "random_flip_shift"]

# Words that address RandomFlipShift's streams: (seed, _PURPOSE, epoch, worker + 1).
_PURPOSE = 0x666C6970  # "flip"


def _check_images(images: Any) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"images should be a (B, C, H, W) tensor, but got {type(images).__name__}; "
                        f"convert the batch with torch.as_tensor first")
    if images.ndim != 4:
        raise ValueError(f"images should be a (B, C, H, W) batch, but got a tensor of shape "
                         f"{tuple(images.shape)}; add a batch dimension with images[None]")
    return images


def random_flip_shift(images: Tensor, generator: torch.Generator, *, shift: int = 2) -> Tensor:
    r"""Random horizontal flips and translations of up to ``shift`` pixels, zero padded.

    Each image :math:`x_b` of the batch is independently flipped left-right with probability
    :math:`1/2` and moved by :math:`(d_y, d_x)` drawn uniformly from
    :math:`\{-s, \dots, s\}^2` (:math:`s` = ``shift``), pixels moved in from outside being 0:

    .. math::
        y_b[c, r, q] = \tilde x_b[c, r - d_y, q - d_x], \qquad
        \tilde x_b = \begin{cases} \mathrm{flip}(x_b) & u_b < 1/2 \\ x_b & \text{else}
        \end{cases}

    with :math:`\tilde x_b[c, i, j] = 0` outside the image. The draws are, in this order,
    ``torch.rand(B)`` (the flips, :math:`u_b`) and ``torch.randint(0, 2s + 1, (2, B))`` (the
    offsets), both from ``generator``: the result is a function of the batch and the
    generator's state, the same on every device. These are the draws, in the same order, of
    the comparison study's augmentation (``balancer.study``), so both give identical batches
    from the same generator state.

    Args:
        images: a ``(B, C, H, W)`` tensor on any device (any dtype: pixels are only moved).
        generator: the source of every draw (a CPU ``torch.Generator`` works for any device).
        shift: the largest translation in pixels, ``>= 0``.

    Returns:
        A new contiguous tensor like ``images``.

    Example:
        >>> image = torch.arange(9.0).reshape(1, 1, 3, 3)
        >>> random_flip_shift(image, torch.Generator().manual_seed(0), shift=1)[0, 0]
        tensor([[0., 0., 0.],
                [1., 0., 0.],
                [4., 3., 0.]])
    """
    images = _check_images(images)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator should be a torch.Generator, but got "
                        f"{type(generator).__name__}; pass torch.Generator().manual_seed(seed)")
    shift = check_int("shift", shift, minimum=0, fix="pass the largest translation in pixels")
    b, c, h, w = images.shape
    device = images.device
    flip = torch.rand(b, generator=generator, device=generator.device) < 0.5
    offsets = torch.randint(0, 2 * shift + 1, (2, b), generator=generator,
                            device=generator.device)
    flip, offsets = flip.to(device), offsets.to(device)
    # One gather does both moves. Padding is symmetric, so flipping the padded image equals
    # padding the flipped one: a flipped output column q reads padded column W' - 1 - (q + d),
    # W' = w + 2 * shift. Row r reads padded row r + offset, column q padded column q + offset.
    padded = F.pad(images, (shift, shift, shift, shift)) if shift else images
    width = w + 2 * shift
    rows = offsets[0][:, None] + torch.arange(h, device=device)
    cols = offsets[1][:, None] + torch.arange(w, device=device)
    cols = torch.where(flip[:, None], width - 1 - cols, cols)
    flat = (rows[:, :, None] * width + cols[:, None, :]).reshape(b, 1, h * w)
    moved = padded.reshape(b, c, -1).gather(2, flat.expand(b, c, h * w))
    return moved.reshape(b, c, h, w)


class RandomFlipShift:
    """:func:`random_flip_shift` as a seeded batch transform, safe in ``DataLoader`` workers.

    The draws of epoch ``e`` come from a generator seeded with ``(seed, e)`` in the main process
    and with ``(seed, e, worker id)`` in a ``DataLoader`` worker, so workers draw independent
    streams (a plain generator copied into every worker would give each the same draws), and a
    run is reproducible given ``seed``, the epoch, and ``num_workers`` (the ``DataLoader``
    hands batches to workers in a fixed round-robin order). Call :meth:`set_epoch` before each
    epoch for fresh draws; with ``persistent_workers=True`` the workers keep the epoch they
    started with, and their streams simply continue.

    Args:
        shift: the largest translation in pixels (keyword-only), ``>= 0``.
        seed: the seed of every stream (keyword-only).

    Example:
        >>> augment = RandomFlipShift(shift=2, seed=0)
        >>> # A white image moved by (dy, dx) keeps (28 - |dy|) * (28 - |dx|) white pixels.
        >>> augment(torch.ones(4, 1, 28, 28)).sum((1, 2, 3)).tolist()
        [702.0, 676.0, 729.0, 729.0]
        >>> augment.set_epoch(1)  # the next epoch's draws
        >>> augment(torch.ones(4, 1, 28, 28)).sum((1, 2, 3)).tolist()
        [702.0, 702.0, 702.0, 702.0]

    On a dataset: ``MedMNIST("pneumoniamnist", batch_transform=RandomFlipShift(seed=0))``.
    """

    def __init__(self, *, shift: int = 2, seed: int = 0) -> None:
        self.shift = check_int("shift", shift, minimum=0,
                               fix="pass the largest translation in pixels")
        self.seed = check_int("seed", seed, minimum=0, fix="pass a non-negative integer seed")
        self.epoch = 0
        self._generator: torch.Generator | None = None
        self._stream: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Draw from epoch ``epoch``'s streams from the next call on."""
        self.epoch = check_int("epoch", epoch, minimum=0, fix="pass the epoch about to start")

    def generator(self) -> torch.Generator:
        """The generator the next call draws from (this process's stream of this epoch)."""
        info = torch.utils.data.get_worker_info()
        stream = (self.epoch, -1 if info is None else info.id)
        if self._generator is None or self._stream != stream:
            words = [self.seed, _PURPOSE, stream[0], stream[1] + 1]
            state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]
            self._generator = torch.Generator().manual_seed(int(state))
            self._stream = stream
        return self._generator

    def __call__(self, images: Tensor) -> Tensor:
        return random_flip_shift(images, self.generator(), shift=self.shift)

    def __getstate__(self) -> dict[str, Any]:
        # A worker rebuilds its own stream; the main process's position is not carried over.
        return {**self.__dict__, "_generator": None, "_stream": None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shift={self.shift}, seed={self.seed})"
