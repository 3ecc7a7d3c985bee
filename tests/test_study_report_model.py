"""report.md describes the model the study trained: the MLP for a --table, the CNN for images."""

from __future__ import annotations

import numpy as np
import pandas as pd

from balancer.__main__ import main


def test_a_table_study_reports_the_mlp_it_trained_not_the_cnn(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = (rng.random(240) < 0.25).astype(int)
    pd.DataFrame({"a": rng.standard_normal(240) + y, "b": rng.standard_normal(240),
                  "y": y}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["study", "--quick", "--table", str(tmp_path / "t.csv"), "--label-col", "y",
                 "--strategies", "plain", "--no-posthoc", "--no-progress", "--bootstrap", "100",
                 "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    report = (tmp_path / "o" / "report.md").read_text()
    assert "**Model.** An MLP of two hidden layers of 64 units" in report
    assert "no augmentation" in report
    assert "CNN" not in report


def test_an_image_study_reports_the_cnn_and_its_augmentation():
    from balancer.study import StudyConfig
    from balancer.study._report import _model_text

    config = StudyConfig(progress=False, augment=False, width=8)
    text = _model_text(config, {"tabular": False})
    assert "8, 16 and 32 channels" in text and "no augmentation" in text
