"""--jobs gives the results of --jobs 1 (README), for the tuning mode too."""

from __future__ import annotations

import pandas as pd
from helpers.study import FAST

from balancer.study import StudyConfig
from balancer.study._study import TIMING_METRICS
from balancer.study._tune import tune


def test_tune_with_jobs_2_chooses_and_scores_exactly_as_jobs_1(small_breastmnist):
    """README: --jobs gives the results of --jobs 1; the tuning test only counted the pool."""
    config = StudyConfig(**FAST, strategies=("focal",), seeds=(100,), posthoc=False)
    serial = tune(config, small_breastmnist)
    parallel = tune(StudyConfig(**{**config.to_dict(), "jobs": 2}), small_breastmnist)
    assert serial["scores"] == parallel["scores"]
    assert serial["settings"] == parallel["settings"]


def test_multilabel_study_with_jobs_2_gives_the_results_of_jobs_1(tmp_path, capsys):
    """--jobs works with --multilabel, with the single-label semantics: whole runs in parallel
    processes, every number that of --jobs 1 (only the run times differ)."""
    from balancer.__main__ import main

    argv = ["study", "--multilabel", "--quick", "--no-progress",
            "--strategies", "plain,label-balanced", "--seeds", "0", "--bootstrap", "100"]
    results = {}
    for jobs in (1, 2):
        assert main([*argv, "--jobs", str(jobs), "--out", str(tmp_path / str(jobs))]) == 0
        frame = pd.read_csv(tmp_path / str(jobs) / "results.csv")
        results[jobs] = frame[~frame["metric"].isin(TIMING_METRICS)].reset_index(drop=True)
    capsys.readouterr()
    pd.testing.assert_frame_equal(results[1], results[2])
