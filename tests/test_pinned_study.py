"""The study's command line, output files and results for a fixed seed, pinned.

``tests/data/pinned_*`` were recorded from the code before the study's two pipelines were made
one; a reorganisation must leave the flags, the files a run writes and every value in
``results.csv`` unchanged (values to 1e-6: a torch build may change the last bits).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import pandas as pd
import pytest

from balancer.__main__ import build_parser, main
from balancer.study._study import TIMING_METRICS

DATA = pathlib.Path(__file__).parent / "data"


def _study_flags() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    study = sub.choices["study"]
    return sorted(s for action in study._actions for s in action.option_strings)


def _untimed(results: pd.DataFrame) -> pd.DataFrame:
    return results[~results["metric"].isin(TIMING_METRICS)].reset_index(drop=True)


@pytest.mark.parametrize(("flags", "pinned", "files"), [
    ([], "pinned_study_results.csv",
     ["balanced_vs_accuracy.png", "config.json", "confusion_matrices.png", "paired.csv",
      "recall_by_class.png", "reliability.png", "report.md", "results.csv", "runs", "study.json",
      "summary.csv"]),
    (["--multilabel"], "pinned_multilabel_study_results.csv",
     ["config.json", "paired.csv", "per_label.csv", "report.md", "results.csv", "runs",
      "study.json", "summary.csv"]),
], ids=["single-label", "multi-label"])
def test_quick_study_results_are_unchanged(tmp_path, flags, pinned, files):
    out = tmp_path / "run"
    assert main(["study", *flags, "--quick", "--no-progress", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == files
    # Wall and CPU seconds differ from run to run; everything else is deterministic.
    got = _untimed(pd.read_csv(out / "results.csv"))
    want = _untimed(pd.read_csv(DATA / pinned))
    keys = [c for c in want.columns if c != "value"]
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got[keys], want[keys])
    pd.testing.assert_series_equal(got["value"], want["value"], rtol=1e-6, atol=1e-9)


def test_study_flags_are_unchanged():
    assert _study_flags() == json.loads((DATA / "pinned_study_flags.json").read_text())


if __name__ == "__main__":  # re-record the flags: python tests/test_pinned_study.py
    (DATA / "pinned_study_flags.json").write_text(json.dumps(_study_flags(), indent=0) + "\n")
