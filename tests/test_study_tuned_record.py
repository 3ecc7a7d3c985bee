"""--tuned FILE: a study on the user's own data takes the settings of a --tune run's tuned.json
(the report names the record); a record of other data or another budget is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main


def _table(path, shift=1.0):
    rng = np.random.default_rng(0)
    y = (rng.random(240) < 0.25).astype(int)
    pd.DataFrame({"a": rng.standard_normal(240) + shift * y, "b": rng.standard_normal(240),
                  "y": y}).to_csv(path, index=False)
    return ["--table", str(path), "--label-col", "y"]


def test_a_study_takes_the_tuning_record_of_its_own_data(tmp_path, capsys):
    data = _table(tmp_path / "t.csv")
    common = ["--quick", "--strategies", "plain,focal", "--no-posthoc", "--no-progress"]
    assert main(["study", "--tune", *common, *data, "--out", str(tmp_path / "tune")]) == 0
    record = tmp_path / "tune" / "tuned.json"
    assert f"--tuned {record}" in capsys.readouterr().out
    assert main(["study", *common, *data, "--bootstrap", "100", "--tuned", str(record),
                 "--out", str(tmp_path / "study")]) == 0
    capsys.readouterr()
    report = (tmp_path / "study" / "report.md").read_text()
    assert "None of this run's settings came from a tuning run" not in report
    assert f"From `{record}`" in report

    # Another budget: refused, naming the setting that differs.
    with pytest.raises(SystemExit):
        main(["study", *common, *data, "--epochs", "3", "--tuned", str(record),
              "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert "was tuned for another budget: --epochs 2 there but 3 here" in err
    # Other data: refused.
    other = _table(tmp_path / "other.csv", shift=2.0)
    with pytest.raises(SystemExit):
        main(["study", *common, *other, "--tuned", str(record), "--out", str(tmp_path / "o")])
    assert f"--tuned {record} was tuned on" in capsys.readouterr().err
