"""Study settings that would not apply are refused before any training starts, naming the
setting and the fix (README: options that do not apply are rejected): --tune with nothing to
tune or with --bootstrap/--tuned, post-hoc settings with --no-posthoc, --threshold on more than
two classes, --label-cols on the semi-synthetic set, compare() settings it would ignore."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers.study import FAST, tiny_own_data, usage_error

from balancer.__main__ import main
from balancer.study import StudyConfig
from balancer.study._tune import tune


def test_tune_with_no_strategy_to_tune_is_an_error_before_training(small_breastmnist, tmp_path,
                                                                   capsys, no_training):
    """--tune on strategies without a key setting (and no post-hoc row) used to train nothing
    and write an empty tuned.json that "chose" nothing."""
    config = StudyConfig(**FAST, strategies=("weighted", "hinge"), seeds=(100,))
    with pytest.raises(ValueError, match=r"no key setting to tune.*without --tune"):
        tune(config, small_breastmnist)
    err = usage_error(["study", "--tune", "--quick", "--dataset", "breastmnist", "--strategies",
                  "plain,weighted", "--no-posthoc", "--out", str(tmp_path / "t")], capsys)
    assert "have no key setting to tune" in err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("extra", [["--bootstrap", "500"], ["--bootstrap", "1000"],
                                   ["--no-tuned"], ["--tuned"]])
def test_tune_refuses_the_bootstrap_and_the_tuned_switch(extra, tmp_path, capsys, no_training):
    """--tune refused --reference because it has "no paired statistics", yet took (and
    ignored) --bootstrap, their replicates; --tuned/--no-tuned mean nothing to tuning runs,
    which never read a record. Given with their default values too."""
    err = usage_error(["study", "--tune", "--quick", "--dataset", "breastmnist", *extra,
                  "--out", str(tmp_path / "t")], capsys)
    flag = "--tuned/--no-tuned" if "tuned" in extra[0] else "--bootstrap"
    assert f"--tune does not take {flag}: the tuning mode" in err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("flag", ["--posthoc-tau", "--balanced-posthoc-tau", "--threshold"])
def test_a_posthoc_setting_with_no_posthoc_is_refused(flag, tmp_path, capsys, no_training):
    """README: options that do not apply are rejected; --no-posthoc removes the rows these
    settings fix, and they used to be silently ignored."""
    err = usage_error(["study", "--quick", "--dataset", "breastmnist", "--no-posthoc", flag, "0.5",
                  "--out", str(tmp_path / "o")], capsys)
    assert f"{flag} sets a post-hoc row, but --no-posthoc removes those rows; remove" in err
    assert not (tmp_path / "o").exists()


def test_threshold_on_data_with_more_than_two_classes_is_refused(tmp_path, capsys, no_training):
    """plain+threshold is a row of two-class data only: --threshold on RetinaMNIST's 5 grades
    used to be accepted and ignored."""
    err = usage_error(["study", "--quick", "--dataset", "retinamnist", "--threshold", "0.3",
                  "--out", str(tmp_path / "o")], capsys)
    assert "--threshold sets plain+threshold, a row of two-class data only, but retinamnist " \
           "has 5 classes; remove --threshold" in err
    assert not (tmp_path / "o").exists()


def test_threshold_on_two_class_data_is_still_used(tmp_path):
    out = tmp_path / "o"
    assert main(["study", "--quick", "--dataset", "breastmnist", "--strategies", "plain",
                 "--threshold", "0.3", "--bootstrap", "100", "--no-progress",
                 "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    used = results[(results["strategy"] == "plain+threshold") & (results["metric"] == "threshold")]
    assert used["value"].tolist() == [0.3]


def test_label_cols_on_the_semisynthetic_set_is_refused(tmp_path, capsys, monkeypatch):
    """README: multi-label options that do not apply are errors. --label-cols Hernia,Mass on
    the default semi-synthetic set used to be ignored: the study trained all 14 findings."""
    import balancer.study._multilabel as ml
    from balancer.study._config import MultiLabelStudyConfig

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr(ml, "train_multilabel_run", refuse)
    with pytest.raises(ValueError, match=r"label_cols=\['Hernia', 'Mass'\] applies to a CSV "
                                         r"table or an ARFF file.*remove --label-cols"):
        MultiLabelStudyConfig(label_cols=("Hernia", "Mass"))
    err = usage_error(["study", "--multilabel", "--quick", "--label-cols", "Hernia,Mass",
                  "--out", str(tmp_path / "o")], capsys)
    assert "semi-synthetic ChestX-ray14 set (all 14 findings)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("settings", "match"), [
    ({"jobs": 2}, r"jobs=2 does not apply; remove jobs"),
    ({"augment": True}, r"adds no augmentation .*augment=True does not apply"),
    ({"tuned": True}, r"tuned=True fills settings from a shipped data set's tuning record"),
])
def test_compare_refuses_settings_it_would_ignore(settings, match, no_training):
    """jobs=2 ran serially, augment=True added nothing (the report listed both as used)."""
    from balancer.study import compare

    with pytest.raises(ValueError, match=match):
        compare(*tiny_own_data(), strategies=("plain",), seeds=(0,), epochs=1, **settings)
