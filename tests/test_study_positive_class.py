"""--positive-class NAME: the positive class of a binary study's AUPRC and sensitivity at 95%
specificity (class 1 by default, so earlier results are unchanged), stated in the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study._metrics import classification_metrics


def test_the_positive_class_is_the_one_named():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p1 = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    probs = np.stack([1 - p1, p1], 1)
    default = classification_metrics(probs, labels, num_classes=2)
    assert classification_metrics(probs, labels, num_classes=2, positive=1) == default
    # Class 0 as positive is class 1 as positive with the classes swapped.
    swapped = classification_metrics(probs[:, ::-1], 1 - labels, num_classes=2, positive=0)
    assert swapped["auprc"] == pytest.approx(default["auprc"])
    assert swapped["sens@95spec"] == pytest.approx(default["sens@95spec"])
    zero = classification_metrics(probs, labels, num_classes=2, positive=0)
    assert zero["auprc"] != pytest.approx(default["auprc"])


def _table(tmp_path):
    rng = np.random.default_rng(0)
    y = np.where(rng.random(240) < 0.25, "sick", "well")
    pd.DataFrame({"a": rng.standard_normal(240) + (y == "sick"), "b": rng.standard_normal(240),
                  "y": y}).to_csv(tmp_path / "t.csv", index=False)
    return ["study", "--quick", "--table", str(tmp_path / "t.csv"), "--label-col", "y",
            "--strategies", "plain", "--no-posthoc", "--no-progress", "--bootstrap", "100"]


def test_positive_class_by_name_reaches_the_metrics_and_the_report(tmp_path, capsys):
    argv = _table(tmp_path)
    assert main([*argv, "--out", str(tmp_path / "d")]) == 0
    assert main([*argv, "--positive-class", "sick", "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    default = (tmp_path / "d" / "report.md").read_text()
    names = sorted(["sick", "well"])  # the classes as the table loader orders them
    assert f"take **{names[1]}** (class 1) as the positive class" in default
    sick = (tmp_path / "s" / "report.md").read_text()
    assert f"take **sick** (class {names.index('sick')}) as the positive class" in sick
    a, b = (pd.read_csv(tmp_path / r / "results.csv").query("metric == 'auprc'")["value"]
            for r in "ds")
    assert not np.allclose(a.to_numpy(), b.to_numpy())


def test_an_unknown_positive_class_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*_table(tmp_path), "--positive-class", "ill", "--out", str(tmp_path / "o")])
    assert "--positive-class ill is not a class of the data; pass one of" in \
        capsys.readouterr().err
