"""What the study's safety and statistics cost, as ratios measured in the same process.

1. Training with a run folder (each finished run saved at once: a CSV of rows and an .npz of
   probabilities, written atomically) against training without one, alternated A/B/A/B.
2. Writing the outputs with the paired statistics (bootstrap over seeds and test samples)
   against the training time of the same study.
3. ``balancer study --help`` in a fresh process against ``python -c "import balancer"`` (the
   floor: the package itself imports torch).

    PYTHONPATH=. python experiments/study_overhead.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from balancer.study import StudyConfig, prepare_data, run_study
from balancer.study._outputs import prepare_out
from balancer.study._report import write_outputs


def _fresh(code: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *code], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    config = StudyConfig(strategies=("plain", "balanced+finetune", "focal"), seeds=(0, 1, 2),
                         progress=False)
    data = prepare_data(config)
    root = Path(tempfile.mkdtemp())
    plain, saved = [], []
    try:
        for k in range(2):
            start = time.perf_counter()
            results = run_study(config, data)
            plain.append(time.perf_counter() - start)
            folder = prepare_out(root / f"r{k}", config=config.to_dict())
            start = time.perf_counter()
            results = run_study(config, data, folder=folder)
            saved.append(time.perf_counter() - start)
        start = time.perf_counter()
        write_outputs(results, config, root / "r0", command="bench", info=results.attrs)
        outputs = time.perf_counter() - start
    finally:
        shutil.rmtree(root)
    print(f"training, 3 strategies x 3 seeds: {min(plain):.1f} s without a run folder, "
          f"{min(saved):.1f} s with one (best of 2): ratio {min(saved) / min(plain):.3f}")
    print(f"writing every output incl. paired bootstrap ({config.bootstrap} replicates): "
          f"{outputs:.1f} s = {outputs / min(saved):.3f} x the training time")
    imports = min(_fresh(["-c", "import balancer"]) for _ in range(3))
    helps = min(_fresh(["-m", "balancer", "study", "--help"]) for _ in range(3))
    print(f"`balancer study --help`: {helps:.2f} s vs `import balancer` {imports:.2f} s "
          f"(best of 3): ratio {helps / imports:.2f}")


if __name__ == "__main__":
    main()
