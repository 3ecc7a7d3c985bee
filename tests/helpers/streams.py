"""Streams for the balanced-stream tests: the same labelled items as a plain ``IterableDataset``,
webdataset tar shards (written here with ``tarfile``, read with webdataset's own pipeline) and a
Hugging Face ``datasets`` stream (``IterableDataset.from_generator`` over shards), plus a label
function that records which items each process read.

Item ``i`` carries its id and its class in every form, so a test can check which items each
rank and worker read, and that their union is the stream.
"""

from __future__ import annotations

import io
import itertools
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info


def class_codes(counts: tuple[int, ...], seed: int = 0) -> list[int]:
    """``counts[c]`` items of class ``c``, in a seeded random order."""
    codes = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(codes)
    return codes.tolist()


class Records(IterableDataset):
    """Dict items ``{"id": i, "label": codes[i]}`` in order; ``set_epoch`` is recorded."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.epochs_set: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_set.append(epoch)

    def __iter__(self):
        return ({"id": i, "label": c} for i, c in enumerate(self.codes))


def write_shards(directory: Path, codes: list[int], shards: int) -> list[str]:
    """Tar shards in webdataset's layout (``<key>.id``, ``<key>.cls`` per item), items dealt
    in contiguous runs; returns the shard paths."""
    directory.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(codes), shards + 1).astype(int)
    paths = []
    for shard in range(shards):
        path = directory / f"shard-{shard:04d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(bounds[shard], bounds[shard + 1]):
                for ext, text in (("id", str(i)), ("cls", str(codes[i]))):
                    data = text.encode()
                    info = tarfile.TarInfo(f"{i:06d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(str(path))
    return paths


def wds_pipeline(paths: list[str], *, nodes: bool = True) -> Any:
    """webdataset's own pipeline over ``paths``: shards split by node (``split_by_node``, or the
    library's default ``single_node_only``) and by worker, items decoded to ``{"id", "cls"}``."""
    import webdataset as wds

    splitter = wds.split_by_node if nodes else wds.single_node_only
    return (wds.WebDataset(paths, shardshuffle=False, nodesplitter=splitter, empty_check=False)
            .decode().map(_id_and_class))


def _id_and_class(sample: dict) -> dict:
    # A module-level function, not a lambda: workers started by spawn pickle the pipeline.
    return {"id": int(sample["id"]), "cls": int(sample["cls"])}


def _generate(shards: list[tuple[int, int]], codes: list[int]):
    for start, stop in shards:
        for i in range(start, stop):
            yield {"id": i, "label": codes[i]}


def hf_stream(codes: list[int], shards: int) -> Any:
    """A Hugging Face ``datasets.IterableDataset`` with ``shards`` shards (data sources)."""
    from datasets import IterableDataset as HFIterable

    bounds = np.linspace(0, len(codes), shards + 1).astype(int)
    ranges = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    return HFIterable.from_generator(_generate, gen_kwargs={"shards": ranges, "codes": tuple(codes)})


class RecordReads:
    """A label function: returns ``item[key]`` and appends ``item["id"]`` to a file named by the
    rank and the worker that read it (a label is read exactly once per item read)."""

    def __init__(self, key: str, directory: Path, rank: int = 0) -> None:
        self.key = key
        self.directory = str(directory)
        self.rank = rank

    def __call__(self, item: dict) -> Any:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        path = os.path.join(self.directory, f"rank{self.rank}-worker{worker}.txt")
        with open(path, "a") as file:
            file.write(f"{int(item['id'])}\n")
        return item[self.key]


def reads(directory: Path) -> dict[str, list[int]]:
    """What :class:`RecordReads` recorded: ids read, per ``rank<r>-worker<w>``."""
    return {path.stem: [int(line) for line in path.read_text().split()]
            for path in sorted(Path(directory).glob("rank*-worker*.txt"))}
