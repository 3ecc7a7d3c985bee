"""The benchmark scripts run and print what they promise, on their smallest settings (the
timings themselves are not checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _bench_losses(*args: str, threads: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, str(root / "benchmarks" / "bench_losses.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_bench_losses_multilabel_part_runs_on_either_clock():
    """A smoke run of the multi-label part on the CPU-time clock: every multi-label loss gets a
    row with a ratio, and the CPU clock refuses what it cannot time (several threads)."""
    done = _bench_losses("--quick", "--only", "multilabel", "--clock", "cpu", "--repeats", "1",
                         threads="1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "clock cpu" in done.stdout
    for name in ("asymmetric", "pos_weighted_bce", "sigmoid_logit_adjusted",
                 "distribution_balanced"):
        rows = [line.split() for line in done.stdout.splitlines() if line.startswith(name + " ")]
        assert len(rows) == 2 and all(float(row[1]) > 0 for row in rows), (name, done.stdout)
    refused = _bench_losses("--quick", "--only", "multilabel", "--clock", "cpu", threads="2")
    assert refused.returncode != 0
    assert "--clock cpu times this thread only" in refused.stderr


def test_bench_stream_quick_prints_both_ratios_and_the_memory_bound():
    """A smoke run of the balanced-stream benchmark: a row with both ratios for each per-item
    cost and number of workers, the most items held within the stated bound (the script asserts
    it), and the cost of keeping two gloo ranks in step."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_stream.py"),
                           "--quick"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if "served" in line and "pass" in line
            and "num_workers=" in line]
    assert len(rows) == 4, done.stdout
    for row in rows:
        served = float(row.split("served ")[-1].split("x")[0])
        assert served > 0, row
    held = [line for line in done.stdout.splitlines() if "stream.peak_held" in line]
    assert len(held) == 2 and all("x of it" in line for line in held), done.stdout
    assert "ranks in step (BalancedStreamLoader)" in done.stdout and "us per batch" in done.stdout
