"""Hostile checks of this session's README promises (multi-label losses, the tuning mode, the
post-hoc settings, --jobs): each test was written against a break found by trying, and fails
on the code before its fix (the last one guards a promise that held)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import balancer.study._train as train_module
import losses
from balancer.__main__ import main
from balancer.study import StudyConfig, prepare_data
from balancer.study._tune import tune

FAST = {"dataset": "breastmnist", "train_limit": 160, "epochs": 2, "batch_size": 32,
        "progress": False, "bootstrap": 100}


@pytest.fixture(scope="module")
def breast():
    return prepare_data(StudyConfig(**FAST))


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr(train_module, "train_and_evaluate", refuse)


def _error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("loss", [losses.PosWeightedBCELoss, losses.SigmoidLogitAdjustedLoss,
                                  losses.DistributionBalancedLoss])
@pytest.mark.parametrize(("value", "shown"), [(-1.0, "-1"), (2.0, "2"), (0.5, "0.5"),
                                               (float("nan"), "nan")])
def test_from_labels_refuses_a_label_matrix_that_is_not_0_1(loss, value, shown):
    """README: "label counts from the training targets" of "0/1 float targets". A CheXpert
    -1 ("uncertain") used to be summed into the count without a word (a wrong prior), a 2 was
    blamed on num_samples, a 0.5 passed; now the entry is named with its position."""
    labels = torch.tensor([[1.0, 0.0], [value, 1.0], [0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=rf"labels\[1, 0\] = {shown} .*map uncertain"):
        loss.from_labels(labels)
    ok = loss.from_labels(labels.nan_to_num(0.0).clamp(0, 1).round())
    assert ok.num_samples == 4


def test_from_labels_still_takes_bool_int_and_numpy_0_1_matrices():
    rows = [[1, 0], [0, 1], [1, 1], [0, 0]]
    expected = losses.PosWeightedBCELoss([2.0, 2.0], num_samples=4).pos_weight
    for labels in (torch.tensor(rows), torch.tensor(rows).bool(), np.array(rows)):
        torch.testing.assert_close(losses.PosWeightedBCELoss.from_labels(labels).pos_weight,
                                   expected)


# ----------------------------------------------------------------------------- --tune
def test_tune_with_no_strategy_to_tune_is_an_error_before_training(breast, tmp_path, capsys,
                                                                   no_training):
    """--tune on strategies without a key setting (and no post-hoc row) used to train nothing
    and write an empty tuned.json that "chose" nothing."""
    config = StudyConfig(**FAST, strategies=("weighted", "hinge"), seeds=(100,))
    with pytest.raises(ValueError, match=r"no key setting to tune.*without --tune"):
        tune(config, breast)
    err = _error(["study", "--tune", "--quick", "--dataset", "breastmnist", "--strategies",
                  "plain,weighted", "--no-posthoc", "--out", str(tmp_path / "t")], capsys)
    assert "have no key setting to tune" in err
    assert not (tmp_path / "t").exists()


def test_tune_with_jobs_2_chooses_and_scores_exactly_as_jobs_1(breast):
    """README: --jobs gives the results of --jobs 1; the tuning test only counted the pool."""
    config = StudyConfig(**FAST, strategies=("focal",), seeds=(100,), posthoc=False)
    serial = tune(config, breast)
    parallel = tune(StudyConfig(**{**config.to_dict(), "jobs": 2}), breast)
    assert serial["scores"] == parallel["scores"]
    assert serial["settings"] == parallel["settings"]


# ----------------------------------------------------------------------------- post-hoc
@pytest.mark.parametrize("flag", ["--posthoc-tau", "--balanced-posthoc-tau", "--threshold"])
def test_a_posthoc_setting_with_no_posthoc_is_refused(flag, tmp_path, capsys, no_training):
    """README: options that do not apply are rejected; --no-posthoc removes the rows these
    settings fix, and they used to be silently ignored."""
    err = _error(["study", "--quick", "--dataset", "breastmnist", "--no-posthoc", flag, "0.5",
                  "--out", str(tmp_path / "o")], capsys)
    assert f"{flag} sets a post-hoc row, but --no-posthoc removes those rows; remove" in err
    assert not (tmp_path / "o").exists()


def test_threshold_on_data_with_more_than_two_classes_is_refused(tmp_path, capsys, no_training):
    """plain+threshold is a row of two-class data only: --threshold on RetinaMNIST's 5 grades
    used to be accepted and ignored."""
    err = _error(["study", "--quick", "--dataset", "retinamnist", "--threshold", "0.3",
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


# ----------------------------------------------------------------------------- --resume
def test_a_multilabel_study_resumes_with_another_rarest_but_not_another_budget(tmp_path):
    """README: "Resuming with other training settings is refused (seeds and strategies may
    change)". --rarest only chooses which labels the report lists (every saved run holds the
    metrics of every label), yet a resume with another --rarest used to be refused."""
    from balancer.study._ml_config import MultiLabelStudyConfig
    from balancer.study._outputs import prepare_out

    config = MultiLabelStudyConfig(quick=True)
    prepare_out(tmp_path, config=config.to_dict())
    (tmp_path / "runs").mkdir()  # a started study
    again = MultiLabelStudyConfig(**{**config.to_dict(), "rarest": 5})
    assert prepare_out(tmp_path, config=again.to_dict(), resume=True).done == {}
    longer = MultiLabelStudyConfig(**{**config.to_dict(), "epochs": 3})
    with pytest.raises(ValueError, match=r"other settings \(epochs: 10 then, 3 now\)"):
        prepare_out(tmp_path, config=longer.to_dict(), resume=True)


# ----------------------------------------------------------------------------- sampler options
def _multilabel_loader():
    from torch.utils.data import DataLoader, TensorDataset

    targets = torch.zeros(40, 3)
    targets[:10, 0], targets[5:25, 1], targets[30:, 2] = 1, 1, 1
    return DataLoader(TensorDataset(torch.randn(40, 2), targets), batch_size=8), targets


@pytest.mark.parametrize(("sampler", "options", "match"), [
    ("label-balanced", {"threshold": 0.1},
     r"threshold is not an option of MultiLabelBalancedSampler \(sampler='label-balanced'\), "
     r"but got threshold=0.1; pass sampler='repeat-factor' or remove threshold="),
    ("repeat-factor", {"min_bucket_share": 0.1},
     r"min_bucket_share is not an option of RepeatFactorSampler .*pass "
     r"sampler='label-balanced'"),
    ("repeat-factor", {"samples_per_epoch": 50},
     r"samples_per_epoch is not an option of RepeatFactorSampler .*pass sampler='balanced'"),
    ("label-balanced", {"gamma": 2}, r"gamma is not an option of MultiLabelBalancedSampler "
                                     r".*got gamma=2; remove gamma="),
])
def test_an_option_of_another_sampler_names_the_sampler_that_takes_it(sampler, options, match):
    """README: the adapters "take sampler=... and that sampler's options (threshold=...)".
    An option of the other sampler used to surface as Python's bare "__init__() got an
    unexpected keyword argument", with no fix."""
    from balancer import balance

    loader, targets = _multilabel_loader()
    with pytest.raises(TypeError, match=match):
        balance(loader, labels=targets, sampler=sampler, **options)


def test_accelerate_prepare_checks_the_sampler_options_too():
    pytest.importorskip("accelerate")
    from accelerate import Accelerator

    from balancer.integrations.accelerate import prepare

    loader, targets = _multilabel_loader()
    with pytest.raises(TypeError, match=r"threshold is not an option of "
                                        r"MultiLabelBalancedSampler.*sampler='repeat-factor'"):
        prepare(Accelerator(cpu=True), loader, labels=targets, sampler="label-balanced",
                threshold=0.1)
    prepared = prepare(Accelerator(cpu=True), loader, labels=targets, sampler="repeat-factor",
                       threshold=0.5)
    from balancer import RepeatFactorSampler

    assert isinstance(prepared.balanced_sampler, RepeatFactorSampler)
    assert prepared.balanced_sampler.threshold == 0.5


def test_tune_on_your_own_data_prints_the_flags_not_a_record_that_is_never_read(tmp_path,
                                                                                capsys):
    """The tuning run used to advise copying tuned.json to balancer/study/tuned/<dataset>.json
    for any data; that file is read back only for a shipped data set (load_tuned(None) is
    None), so for a --table the advice could never work. It now prints the flags."""
    from balancer.study._config import load_tuned

    rng = np.random.default_rng(0)
    y = (rng.random(240) < 0.25).astype(int)
    frame = pd.DataFrame({"a": rng.standard_normal(240) + y, "b": rng.standard_normal(240),
                          "y": y})
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert main(["study", "--tune", "--quick", "--table", str(tmp_path / "t.csv"),
                 "--label-col", "y", "--strategies", "plain,focal", "--no-posthoc",
                 "--no-progress", "--out", str(tmp_path / "tune")]) == 0
    printed = capsys.readouterr().out
    assert "<dataset>.json" not in printed and load_tuned(None) is None
    assert "to use these settings on this data, pass --focal-gamma " in printed


def test_label_cols_on_the_semisynthetic_set_is_refused(tmp_path, capsys, monkeypatch):
    """README: multi-label options that do not apply are errors. --label-cols Hernia,Mass on
    the default semi-synthetic set used to be ignored: the study trained all 14 findings."""
    import balancer.study._multilabel as ml
    from balancer.study._ml_config import MultiLabelStudyConfig

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr(ml, "train_multilabel_run", refuse)
    with pytest.raises(ValueError, match=r"label_cols=\['Hernia', 'Mass'\] applies to a CSV "
                                         r"table or an ARFF file.*remove --label-cols"):
        MultiLabelStudyConfig(label_cols=("Hernia", "Mass"))
    err = _error(["study", "--multilabel", "--quick", "--label-cols", "Hernia,Mass",
                  "--out", str(tmp_path / "o")], capsys)
    assert "semi-synthetic ChestX-ray14 set (all 14 findings)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra", [["--bootstrap", "500"], ["--bootstrap", "1000"],
                                   ["--no-tuned"], ["--tuned"]])
def test_tune_refuses_the_bootstrap_and_the_tuned_switch(extra, tmp_path, capsys, no_training):
    """--tune refused --reference because it has "no paired statistics", yet took (and
    ignored) --bootstrap, their replicates; --tuned/--no-tuned mean nothing to tuning runs,
    which never read a record. Given with their default values too."""
    err = _error(["study", "--tune", "--quick", "--dataset", "breastmnist", *extra,
                  "--out", str(tmp_path / "t")], capsys)
    flag = "--tuned/--no-tuned" if "tuned" in extra[0] else "--bootstrap"
    assert f"--tune does not take {flag}: the tuning mode" in err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("files", [("tuned.json", "tune.md"), ("per_label.csv",)])
def test_a_folder_of_a_tuning_run_or_a_multilabel_table_is_a_previous_study(files, tmp_path):
    """README: a folder holding a previous study is refused unless --overwrite, "which first
    removes the old study's files, so the folder never mixes two studies". A tuning run's
    tuned.json/tune.md and the multi-label per_label.csv were not counted as such files."""
    from balancer.study._outputs import prepare_out

    for name in files:
        (tmp_path / name).write_text("old")
    config = StudyConfig(**FAST).to_dict()
    with pytest.raises(ValueError, match=rf"already holds a study \({files[0]}"):
        prepare_out(tmp_path, config=config)
    prepare_out(tmp_path, config=config, overwrite=True)
    assert not any((tmp_path / name).exists() for name in files)


def test_tune_with_overwrite_replaces_a_previous_study(tmp_path, capsys):
    """The tuning mode says "pass --overwrite to replace them", but it only wrote tuned.json
    and tune.md next to the old study's results.csv and report.md."""
    out = tmp_path / "t"
    (out / "runs").mkdir(parents=True)
    for name in ("results.csv", "report.md"):
        (out / name).write_text("old study")
    assert main(["study", "--tune", "--quick", "--dataset", "breastmnist", "--strategies",
                 "focal", "--no-posthoc", "--no-progress", "--overwrite",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tune.md", "tuned.json"]


def test_a_study_does_not_resume_with_another_thread_count(tmp_path):
    """README: "--resume --out DIR ... gives the same results.csv as an uninterrupted run".
    threads was listed as a setting that changes no number, but a plain run on 160 BreastMNIST
    images trained with 1 and with 2 torch threads differed by 2.4e-7 in its test probabilities
    (this machine, torch 2.13 CPU), so a resume with another --threads mixed the two."""
    from balancer.study._outputs import prepare_out

    config = StudyConfig(**FAST)
    prepare_out(tmp_path, config=config.to_dict())
    (tmp_path / "runs").mkdir()
    more = StudyConfig(**{**config.to_dict(), "threads": 2})
    with pytest.raises(ValueError, match=r"other settings \(threads: 1 then, 2 now\)"):
        prepare_out(tmp_path, config=more.to_dict(), resume=True)
    jobs = StudyConfig(**{**config.to_dict(), "jobs": 2})  # jobs changes no number (tested)
    assert prepare_out(tmp_path, config=jobs.to_dict(), resume=True).done == {}


# ----------------------------------------------------------------------------- compare()
def _own_data():
    from torch import nn

    X = torch.randn(600, 8, generator=torch.Generator().manual_seed(0))
    y = (X[:, 0] > 1.0).long()
    splits = torch.utils.data.random_split(torch.utils.data.TensorDataset(X, y),
                                           [400, 100, 100],
                                           generator=torch.Generator().manual_seed(0))

    def model_fn(num_classes):
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, num_classes))

    return (*splits, model_fn)


def test_compare_on_your_own_data_takes_no_retinamnist_record_and_no_kappa(tmp_path):
    """README: the tuned choices "are the defaults of the study on that data set", kappa is
    "for ordinal classes (--ordinal; on by default for RetinaMNIST)". A compare() config has
    no data set, which StudyConfig reads as the default RetinaMNIST: at the default budget a
    user's data got RetinaMNIST's tuned focal_gamma=0.5, drs/crt_epochs=6, a fixed post-hoc
    tau, and a quadratic weighted kappa as if its classes were retinopathy grades."""
    from balancer.study import compare
    from balancer.study._config import LIBRARY_DEFAULTS

    results = compare(*_own_data(), strategies=("plain", "focal"), seeds=(0,), epochs=12,
                      out=tmp_path / "o")
    saved = json.loads((tmp_path / "o" / "study.json").read_text())
    assert saved["focal_gamma"] == LIBRARY_DEFAULTS["focal_gamma"]
    assert saved["posthoc_tau"] is None and saved["tuned_from"]["file"] is None
    assert not any("kappa" in metric for metric in set(results["metric"]))
    taus = results[(results["strategy"] == "plain+posthoc") & (results["metric"] == "posthoc_tau")]
    assert len(taus) == 1  # chosen per seed on validation, not RetinaMNIST's fixed 1.0


@pytest.mark.parametrize(("settings", "match"), [
    ({"jobs": 2}, r"jobs=2 does not apply; remove jobs"),
    ({"augment": True}, r"adds no augmentation .*augment=True does not apply"),
    ({"tuned": True}, r"tuned=True fills settings from a shipped data set's tuning record"),
])
def test_compare_refuses_settings_it_would_ignore(settings, match, no_training):
    """jobs=2 ran serially, augment=True added nothing (the report listed both as used)."""
    from balancer.study import compare

    with pytest.raises(ValueError, match=match):
        compare(*_own_data(), strategies=("plain",), seeds=(0,), epochs=1, **settings)
