"""--jobs gives the results of --jobs 1 (README), for the tuning mode too."""

from __future__ import annotations

from helpers.study import FAST

from balancer.study import StudyConfig
from balancer.study._tune import tune


def test_tune_with_jobs_2_chooses_and_scores_exactly_as_jobs_1(small_breastmnist):
    """README: --jobs gives the results of --jobs 1; the tuning test only counted the pool."""
    config = StudyConfig(**FAST, strategies=("focal",), seeds=(100,), posthoc=False)
    serial = tune(config, small_breastmnist)
    parallel = tune(StudyConfig(**{**config.to_dict(), "jobs": 2}), small_breastmnist)
    assert serial["scores"] == parallel["scores"]
    assert serial["settings"] == parallel["settings"]
