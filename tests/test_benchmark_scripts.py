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
