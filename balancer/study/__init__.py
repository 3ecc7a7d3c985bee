"""The comparison study: weighting vs resampling strategies, trained the same way, several seeds.

Example::

    from balancer.study import StudyConfig, run_study, write_outputs

    config = StudyConfig(dataset="pneumoniamnist", strategies=("plain", "balanced+finetune"))
    results = run_study(config)           # long DataFrame: strategy, seed, split, metric, value
    write_outputs(results, config, "runs/pneumonia", command="(python)", info=results.attrs)

The multi-label study runs through the same functions with a ``MultiLabelStudyConfig``. Layout:
``_strategies`` declares every strategy and its key settings (the rest is derived from it),
``_config`` the settings, ``_data`` the data and ``_metrics`` the metrics (both tasks side by
side in each), ``_train``/``_multilabel`` the training loops, ``_study`` the runner,
``_outputs`` the run folder and the registry of its files, ``_report`` the reports, ``_cli``
the ``balancer study`` command.

From the command line: ``balancer study --help``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Attributes are imported on first use (PEP 562), so `balancer study --help` and
# `import balancer.study._config` do not pay for pandas, scikit-learn, tqdm and matplotlib.
_EXPORTS = {
    "OUTPUT_FILES": "_outputs", "format_table": "_report", "summarize": "_report",
    "write_outputs": "_report",
    "QUICK": "_config", "StudyConfig": "_config",
    "StudyData": "_data", "load_csv": "_data", "load_npz": "_data", "load_study_data": "_data",
    "load_table": "_data", "load_features": "_data",
    "classification_metrics": "_metrics", "expected_calibration_error": "_metrics",
    "STRATEGIES": "_strategies", "Strategy": "_strategies", "seeded_generator": "_strategies",
    "RunResult": "_train", "train_and_evaluate": "_train",
    "prepare_data": "_study", "run_study": "_study",
    "RunFolder": "_outputs", "prepare_out": "_outputs",
    "compare": "_compare",
    "tune": "_tune", "write_tuning": "_tune",
}
# The multi-label study (``balancer study --multilabel``).
_EXPORTS.update({"MultiLabelStudyConfig": "_config", "run_multilabel_study": "_study",
                 "write_multilabel_outputs": "_report"})

__all__ = sorted(name for name in _EXPORTS if name not in ("seeded_generator",
                                                           "train_and_evaluate"))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'balancer.study' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"balancer.study.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
