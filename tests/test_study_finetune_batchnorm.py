"""The study's BatchNorm setting for the fine-tune phase (``finetune_batchnorm``): declared once
with balanced+finetune, a flag, a tuning-grid point, the report, and shipped tuning records
written before it still load."""

from __future__ import annotations

import pathlib

import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study import StudyConfig, _config
from balancer.study._strategies import LIBRARY_DEFAULTS, SETTINGS, TUNABLE
from balancer.study._tune import GRID

PINNED = pathlib.Path(__file__).parent / "data" / "pinned_study_results.csv"


def test_declared_with_balanced_finetune_and_in_its_grid():
    assert TUNABLE["balanced+finetune"] == ("finetune_epochs", "finetune_lr_scale",
                                            "finetune_batchnorm")
    assert SETTINGS["finetune_batchnorm"].choices == ("frozen", "train")
    # The study's default is the behaviour its pinned results and tuned records were made with.
    assert LIBRARY_DEFAULTS["finetune_batchnorm"] == "train"
    assert {point["finetune_batchnorm"] for point in GRID["balanced+finetune"]} == {"frozen",
                                                                                    "train"}


def test_shipped_records_without_the_setting_still_load():
    config = StudyConfig()  # shipped retinamnist at the default budget: its record applies
    assert config.tuned_from["applies"]
    assert "finetune_epochs" in config.tuned_from["settings"]
    assert "finetune_batchnorm" not in config.tuned_from["settings"]
    assert config.finetune_batchnorm == "train"


def test_a_record_with_the_setting_is_taken(monkeypatch):
    record = _config.load_tuned("retinamnist")
    record = {**record, "settings": {**record["settings"], "finetune_batchnorm": "frozen"}}
    monkeypatch.setattr(_config, "load_tuned", lambda dataset: record)
    config = StudyConfig()
    assert config.finetune_batchnorm == "frozen"
    assert config.tuned_from["settings"]["finetune_batchnorm"] == "frozen"
    assert StudyConfig(finetune_batchnorm="train").finetune_batchnorm == "train"  # given wins


@pytest.mark.parametrize("value, error", [("eval", ValueError), (0, TypeError)])
def test_bad_value(value, error):
    with pytest.raises(error, match=f"batchnorm should be one of .*batchnorm={value!r}"):
        StudyConfig(finetune_batchnorm=value, tuned=False)


def test_bad_flag(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--quick", "--finetune-batchnorm", "eval"])
    assert "invalid choice: 'eval'" in capsys.readouterr().err


def test_frozen_flag_changes_the_finetune_row_and_the_report_states_it(tmp_path):
    out = tmp_path / "run"
    assert main(["study", "--quick", "--no-progress", "--strategies", "balanced+finetune",
                 "--finetune-batchnorm", "frozen", "--out", str(out)]) == 0
    assert "- `finetune_batchnorm` = `frozen`" in (out / "report.md").read_text()
    got = pd.read_csv(out / "results.csv")
    pinned = pd.read_csv(PINNED)  # recorded with BatchNorm in train mode
    keys = ["strategy", "seed", "split", "metric"]
    both = got.merge(pinned[pinned["strategy"] == "balanced+finetune"], on=keys,
                     suffixes=("", "_train"))
    both = both[both["metric"].isin(["accuracy", "nll"]) & (both["split"] == "test")]
    assert len(both) == 2
    assert (both["value"] != both["value_train"]).all()
