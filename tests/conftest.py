"""Fixtures shared by several test modules (non-fixture helpers live in ``helpers/``).

The study is imported inside its fixtures: this file loads for every test, and most tests never
touch the study.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_breastmnist():
    """The prepared data of the ``FAST`` study (160 BreastMNIST training images)."""
    from helpers.study import FAST

    from balancer.study import StudyConfig, prepare_data

    return prepare_data(StudyConfig(**FAST))


@pytest.fixture
def no_training(monkeypatch):
    """Fails a test whose study starts training: for checks that must refuse the inputs first."""
    import balancer.study._train as train_module

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr(train_module, "train_and_evaluate", refuse)
