"""One epoch of the 2-process Lightning test (``tests/_job_lightning.py``: ``Trainer(strategy=
"ddp", devices=2, accelerator="cpu")``), with the balanced loader and with a plain shuffled
``DataLoader`` (Lightning adds its ``DistributedSampler``), timed alternately in the same run.

    python benchmarks/bench_frameworks.py [--repeats 3]

An epoch's time runs from Lightning's ``on_train_epoch_start`` to ``on_train_epoch_end`` on rank
0 and includes the training steps; the two loaders' epochs differ in length (a balanced epoch
has ``C * n_max`` samples, a plain one ``N``), so the figure is the time per batch, as the ratio
balanced / plain (1.0 = no slower; below 1 = faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def epoch_time_per_batch(plain: bool, out: Path) -> float:
    args = [sys.executable, str(ROOT / "tests" / "_job_lightning.py"), "--out", str(out),
            "--epochs", "1", "--finetune-epochs", "0"] + (["--plain"] if plain else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=600)
    batches, seconds = json.loads((out / "rank0.json").read_text())["epoch_times"][0]
    return seconds / batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as directory:
        for repeat in range(repeats):
            for plain in (True, False):
                times[plain].append(epoch_time_per_batch(plain, Path(directory) / f"{plain}{repeat}"))
    plain, balanced = statistics.median(times[True]), statistics.median(times[False])
    print(f"Lightning, 2 CPU processes, one epoch, time per batch (median of {repeats}): "
          f"balanced / plain shuffled = {balanced / plain:.2f}x "
          f"(runs: balanced {[f'{t * 1e3:.2f}' for t in times[False]]} ms, "
          f"plain {[f'{t * 1e3:.2f}' for t in times[True]]} ms)")


if __name__ == "__main__":
    main()
