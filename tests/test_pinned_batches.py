"""The batches of every sampler kind for fixed seeds, pinned by hash.

The hashes in ``tests/data/pinned_batches.json`` were recorded from the code before the package
was reorganised; a reorganisation (or any refactor) must leave every one of them unchanged. A
deliberate change to a sampler's plan re-records them (``python tests/test_pinned_batches.py``)
and says so in the changelog. Each case covers 4 consecutive epochs, a fine-tune epoch where the
schedule has one, ``drop_last`` on and off and 1-3 replicas (every rank's batches hashed).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sys

import numpy as np
import pytest

from balancer import (
    BalancedBatchSampler,
    FineTuneSchedule,
    MultiLabelBalancedSampler,
    RepeatFactorSampler,
)

PINS = pathlib.Path(__file__).parent / "data" / "pinned_batches.json"
EPOCHS = 4
CLASS_MIXES = {"three": [50, 5, 2], "four": [10, 10, 10, 1], "two": [100, 3]}
BATCH_SIZES = (2, 7, 16)


def _single_labels(mix: list[int]) -> np.ndarray:
    labels = np.repeat(np.arange(len(mix)), mix)
    return np.random.default_rng(len(mix)).permutation(labels)  # classes interleaved


def _multi_labels(rows: int, width: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    matrix = (generator.random((rows, width)) < np.linspace(0.02, 0.4, width)).astype(np.int64)
    matrix[np.arange(rows), generator.integers(0, width, rows)] = 1  # every row has a label
    return matrix


def _cases() -> list[tuple[str, str, dict]]:
    cases = []
    for mix_name, mix in CLASS_MIXES.items():
        for batch in BATCH_SIZES:
            for finetune in (False, True):
                for drop_last in (False, True):
                    for replicas in (1, 2, 3):
                        cases.append(("balanced", f"balanced-{mix_name}-b{batch}-ft{int(finetune)}"
                                      f"-dl{int(drop_last)}-r{replicas}",
                                      {"mix": mix, "batch": batch, "finetune": finetune,
                                       "drop_last": drop_last, "replicas": replicas}))
    for kind in ("repeat-factor", "label-balanced"):
        for width, rows in ((5, 60), (12, 150)):
            for batch in (3, 16):
                for finetune in (False, True):
                    for drop_last in (False, True):
                        for replicas in (1, 2, 3):
                            cases.append((kind, f"{kind}-L{width}-b{batch}-ft{int(finetune)}"
                                          f"-dl{int(drop_last)}-r{replicas}",
                                          {"width": width, "rows": rows, "batch": batch,
                                           "finetune": finetune, "drop_last": drop_last,
                                           "replicas": replicas}))
    return cases


def _sampler(kind: str, case: dict, rank: int):
    schedule = FineTuneSchedule(EPOCHS, 1) if case["finetune"] else None
    common = {"seed": 7, "drop_last": case["drop_last"], "schedule": schedule,
              "num_replicas": case["replicas"], "rank": rank}
    if kind == "balanced":
        return BalancedBatchSampler(_single_labels(case["mix"]), case["batch"], **common)
    labels = _multi_labels(case["rows"], case["width"], case["width"])
    if kind == "repeat-factor":
        return RepeatFactorSampler(labels, case["batch"], threshold=0.3, **common)
    return MultiLabelBalancedSampler(labels, case["batch"], **common)


def batches_hash(kind: str, case: dict) -> str:
    digest = hashlib.sha256()
    for rank in range(case["replicas"]):
        try:
            sampler = _sampler(kind, case, rank)
        except ValueError:  # a layout the sampler refuses (no batch per replica): pinned as such
            return "refused"
        for epoch in range(EPOCHS):
            sampler.set_epoch(epoch)
            batches = [[int(i) for i in batch] for batch in sampler]
            digest.update(json.dumps([rank, epoch, batches]).encode())
    return digest.hexdigest()[:16]


CASES = _cases()


@pytest.mark.parametrize(("kind", "name", "case"), CASES, ids=[name for _, name, _ in CASES])
def test_batches_match_the_recorded_hash(kind: str, name: str, case: dict) -> None:
    pins = json.loads(PINS.read_text())
    assert batches_hash(kind, case) == pins[name], (
        f"{name}: the batches changed; a deliberate plan change re-records the pins")


def test_every_case_is_pinned() -> None:
    assert set(json.loads(PINS.read_text())) == {name for _, name, _ in CASES}


if __name__ == "__main__":  # re-record: python tests/test_pinned_batches.py
    PINS.write_text(json.dumps({name: batches_hash(kind, case) for kind, name, case in CASES},
                               indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(CASES)} pins in {PINS}", file=sys.stderr)
