"""Small real medical-imaging datasets shipped with the project (MedMNIST v2, 28x28).

The files in ``balancer/data`` are copies of the official MedMNIST v2 releases, licensed
CC BY 4.0: Yang et al., "MedMNIST v2", Scientific Data 10:41 (2023). See
``balancer/data/README.md`` for the per-file sources and counts.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import collate, default_collate_fn_map

__all__ = ["SHIPPED_DATASETS", "MedMNIST", "load_chestxray14_labels", "load_medmnist"]

_DATA_DIR = Path(__file__).resolve().parent / "data"

#: Names accepted by :func:`load_medmnist` without a path.
SHIPPED_DATASETS: tuple[str, ...] = ("breastmnist", "pneumoniamnist", "retinamnist")

_SPLITS = ("train", "val", "test")


def _resolve(name_or_path: str | os.PathLike) -> Path:
    if isinstance(name_or_path, str) and name_or_path.lower() in SHIPPED_DATASETS:
        return _DATA_DIR / f"{name_or_path.lower()}.npz"
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"dataset should be a shipped name {SHIPPED_DATASETS} or a path to a .npz file, "
            f"but got {type(name_or_path).__name__}"
        )
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset={str(name_or_path)!r} is neither a shipped dataset {SHIPPED_DATASETS} "
            f"nor an existing file; pass one of those names or the path of a MedMNIST-layout .npz"
        )
    return path


def load_medmnist(
    name_or_path: str | os.PathLike = "retinamnist", split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a MedMNIST-layout ``.npz`` file.

    Args:
        name_or_path: one of :data:`SHIPPED_DATASETS` or the path of a ``.npz`` file with the
            keys ``{split}_images`` (uint8, ``(N, H, W)`` or ``(N, H, W, 3)``) and
            ``{split}_labels`` (integers, ``(N,)`` or ``(N, 1)``).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        ``(images, labels)``: the images as stored and the labels as a 1-D ``int64`` array.

    Example:
        >>> images, labels = load_medmnist("breastmnist", "train")
        >>> images.shape, np.bincount(labels).tolist()
        ((546, 28, 28), [147, 399])
    """
    if split not in _SPLITS:
        raise ValueError(f"split should be one of {_SPLITS}, but got split={split!r}")
    path = _resolve(name_or_path)
    with np.load(path) as data:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise KeyError(
                f"{path} lacks the key(s) {missing} of the MedMNIST layout; it has {sorted(data.files)}. "
                f"Store the images as '{split}_images' and the labels as '{split}_labels'."
            )
        images = data[keys[0]]
        labels = data[keys[1]]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"{path}: '{split}_labels' has shape {labels.shape}; expected (N,) or (N, 1) class indices "
            f"(multi-label MedMNIST files are not supported here)"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{path}: {len(images)} images but {len(labels)} labels in split {split!r}; they must match"
        )
    return images, labels.astype(np.int64)


class _Sample(tuple):
    """One ``(image, label)`` pair of a :class:`_Batch`: a plain tuple to any code that reads it,
    and the type ``default_collate`` recognises to take the already collated batch."""

    __slots__ = ()


class _Batch(Sequence):
    """What ``MedMNIST.__getitems__`` returns: the samples of one batch, already gathered.

    # Design note: why a sequence of samples, and a collate hook
    # The DataLoader passes whatever ``__getitems__`` returns to its ``collate_fn`` as the list of
    # samples, so returning ``[images, labels]`` would be collated a second time (and fail). A
    # ``_Batch`` is that list of samples, read lazily from two batch tensors (a custom
    # ``collate_fn`` sees ordinary ``(image, label)`` tuples), and ``default_collate`` finds its
    # first element's type, ``_Sample``, in ``default_collate_fn_map`` (torch's documented
    # extension point), whose entry returns the two tensors as they are: the batch the default
    # collate would build from per-item samples, without a Python step per sample.
    """

    __slots__ = ("images", "labels")

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    @overload
    def __getitem__(self, index: int) -> _Sample: ...
    @overload
    def __getitem__(self, index: slice) -> list[_Sample]: ...
    def __getitem__(self, index: int | slice) -> _Sample | list[_Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return _Sample((self.images[index], int(self.labels[index])))

    def __iter__(self) -> Iterator[_Sample]:
        return map(_Sample, zip(self.images, self.labels.tolist(), strict=True))

    def __repr__(self) -> str:
        return f"_Batch(images={tuple(self.images.shape)}, labels={self.labels.tolist()})"


def _collate_samples(batch: Any, *, collate_fn_map: dict[Any, Any] | None = None) -> Any:
    if isinstance(batch, _Batch):
        return [batch.images, batch.labels]
    # Samples taken out of their batch (a custom collate_fn's list): collate them as tuples.
    return collate([tuple(sample) for sample in batch], collate_fn_map=collate_fn_map)


default_collate_fn_map[_Sample] = _collate_samples


def _check_transform(name: str, value: Any, what: str) -> Callable | None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} should be a callable on {what} or None, but got "
                        f"{name}={value!r} of type {type(value).__name__}; pass a function or "
                        f"a torchvision-style transform object")
    return value


def _index_tensor(indices: Any, size: int) -> Tensor:
    """``indices`` as a 1-D int64 tensor in ``[0, size)`` (negative ones counted from the end,
    as ``dataset[i]`` does), or a ``TypeError``/``ValueError``/``IndexError`` saying why not."""
    accepted = "a list of ints, a 1-D integer numpy array or a 1-D integer torch tensor"
    index: Tensor | np.ndarray
    if isinstance(indices, Tensor):
        index = indices.detach()
    elif isinstance(indices, np.ndarray):
        index = torch.from_numpy(np.ascontiguousarray(indices)) if indices.dtype.kind in "iu" \
            else indices
    elif isinstance(indices, (list, tuple, range)):
        array = np.asarray(indices) if len(indices) else np.empty(0, np.int64)
        if array.dtype == object and array.ndim == 1:
            # Index-like objects numpy does not convert (0-d tensors of mixed kinds, ...).
            try:
                array = np.array([operator.index(i) for i in indices], dtype=np.int64)
            except TypeError:
                pass
        index = torch.from_numpy(array) if array.dtype.kind in "iu" else array
    else:
        raise TypeError(f"indices should be {accepted}, but got {type(indices).__name__}")
    dtype = index.dtype
    if isinstance(index, np.ndarray) or index.dtype == torch.bool \
            or index.dtype.is_floating_point or index.dtype.is_complex:
        raise TypeError(
            f"indices should be {accepted}, but got {type(indices).__name__} of dtype {dtype}; "
            f"pass integer positions (a boolean mask: use mask.nonzero()[:, 0] first)")
    if index.ndim != 1:
        raise ValueError(f"indices should be 1-D (one position per sample of the batch), but got "
                         f"shape {tuple(index.shape)}; flatten it with indices.reshape(-1)")
    index = index.to(device="cpu", dtype=torch.int64)
    if len(index):
        low, high = (int(v) for v in torch.aminmax(index))
        if low < -size or high >= size:
            bad = low if low < -size else high
            raise IndexError(f"indices should lie in [-{size}, {size}) for a dataset of {size} "
                             f"samples, but got index {bad}; check the sampler's indices "
                             f"against len(dataset)")
        if low < 0:
            index = torch.where(index < 0, index + size, index)
    return index


class MedMNIST(Dataset):
    r"""A MedMNIST split as a map-style dataset of ``(image, label)`` pairs.

    Images come out as ``float32`` tensors of shape ``(channels, 28, 28)`` scaled to ``[0, 1]``
    (:math:`x = p / 255` for the stored ``uint8`` pixel :math:`p`); labels as Python ints. The
    labels are also exposed as the array :attr:`labels`, so samplers can read them without
    loading any image.

    A whole batch is fetched in one gather: :meth:`__getitems__`, which ``DataLoader`` calls with
    each batch's indices, returns the samples that ``default_collate`` turns, without a step per
    sample, into exactly the batch it builds from ``dataset[i]`` one by one: ``[images, labels]``,
    a ``float32`` ``(B, C, 28, 28)`` tensor and an ``int64`` ``(B,)`` tensor.

    Args:
        name_or_path: a shipped name (see :data:`SHIPPED_DATASETS`) or a MedMNIST-layout ``.npz``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: optional callable applied to each ``(C, 28, 28)`` image tensor. Batches then
            call it once per sample, as per-item access does.
        batch_transform: optional callable applied to each ``(B, C, H, W)`` batch of images
            (after ``transform``), once per batch, e.g. :class:`~balancer.transforms.RandomFlipShift`;
            it returns a tensor of ``B`` images. ``dataset[i]`` applies it to a batch of one.
            Keyword-only.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from balancer.transforms import RandomFlipShift
        >>> train = MedMNIST("breastmnist", batch_transform=RandomFlipShift(seed=0))
        >>> images, labels = next(iter(DataLoader(train, batch_size=64)))
        >>> images.shape, images.dtype, labels.dtype
        (torch.Size([64, 1, 28, 28]), torch.float32, torch.int64)
    """

    #: :meth:`__getitems__` takes index arrays, so :func:`~balancer.balance` hands it
    #: ``int64`` arrays instead of lists (cheaper to make; the same batches).
    supports_index_arrays = True

    def __init__(self, name_or_path: str | os.PathLike = "retinamnist", split: str = "train",
                 transform: Callable[[Tensor], Any] | None = None, *,
                 batch_transform: Callable[[Tensor], Tensor] | None = None) -> None:
        self.transform = _check_transform("transform", transform, "one (C, H, W) image tensor")
        self.batch_transform = _check_transform("batch_transform", batch_transform,
                                                "a (B, C, H, W) batch of images")
        images, self.labels = load_medmnist(name_or_path, split)
        if images.ndim == 3:
            images = images[:, None]
        else:
            images = images.transpose(0, 3, 1, 2)
        self.images = torch.from_numpy(np.ascontiguousarray(images))

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index].float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        if self.batch_transform is not None:
            image = self._batch_transformed(image[None], 1)[0]
        return image, int(self.labels[index])

    def __getitems__(self, indices: Sequence[int] | np.ndarray | Tensor) -> Sequence[tuple]:
        """The samples at ``indices``, gathered in one step (see the class docstring).

        Args:
            indices: a list of ints, or a 1-D integer numpy array or torch tensor.

        Returns:
            A sequence of ``len(indices)`` ``(image, label)`` pairs that ``default_collate``
            turns into ``[images, labels]`` at once; with a per-item ``transform`` (and no
            ``batch_transform``) a list of the transformed pairs, collated like per-item ones.
        """
        index = _index_tensor(indices, len(self))
        images = self.images.index_select(0, index).float().div_(255.0)
        labels = torch.from_numpy(self.labels).index_select(0, index)
        if self.transform is not None:
            items = [self.transform(image) for image in images]
            if self.batch_transform is None:
                return list(zip(items, labels.tolist(), strict=True))
            if not all(isinstance(item, Tensor) for item in items):
                raise TypeError(
                    f"with a batch_transform, transform should return tensors (they are stacked "
                    f"into a batch), but it returned {type(items[0]).__name__}; end transform "
                    f"with a conversion to a tensor, or move it into batch_transform")
            try:
                images = torch.stack(items)
            except RuntimeError as error:
                raise ValueError(
                    f"with a batch_transform, transform should return images of one shape (they "
                    f"are stacked into a batch), but got {error}; make it return equal shapes"
                ) from error
        if self.batch_transform is not None:
            images = self._batch_transformed(images, len(index))
        return _Batch(images, labels)

    def _batch_transformed(self, images: Tensor, size: int) -> Tensor:
        assert self.batch_transform is not None  # called only when there is one
        out = self.batch_transform(images)
        if not isinstance(out, Tensor) or out.ndim < 1 or len(out) != size:
            got = (f"a tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor)
                   else type(out).__name__)
            raise ValueError(
                f"batch_transform should return a tensor of {size} images (one per input image, "
                f"batch dimension first), but it returned {got} for an input of shape "
                f"{tuple(images.shape)}; make it map (B, C, H, W) to (B, ...)")
        return out


def load_chestxray14_labels() -> pd.DataFrame:
    """The NIH ChestX-ray14 label table shipped with the project (labels only, no images).

    112,120 rows, one per image, with the columns ``Image Index`` (file name),
    ``Finding Labels`` (findings joined by ``|``; ``No Finding`` for none) and ``Patient ID``.
    Source: the NIH Clinical Center's ``Data_Entry_2017_v2020.csv``; cite Wang et al.,
    "ChestX-ray8", CVPR 2017 (see ``balancer/data/README.md``).

    Example:
        >>> table = load_chestxray14_labels()
        >>> table.shape, int((table["Finding Labels"] == "No Finding").sum())
        ((112120, 3), 60361)
        >>> from balancer import labels_of
        >>> int(labels_of(table, "Finding Labels", multilabel=True).counts.min())  # Hernia
        227
    """
    return pd.read_csv(_DATA_DIR / "chestxray14_labels.csv.gz",
                       dtype={"Image Index": str, "Finding Labels": str, "Patient ID": np.int64},
                       keep_default_na=False)
