"""The study's drs and crt rows, the tuning mode (validation only, equal grids), the shipped
tuned settings, and --jobs (parallel runs equal to serial ones)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import balancer.study._config as config_module
from balancer.__main__ import main
from balancer.study import STRATEGIES, StudyConfig, prepare_data, run_study
from balancer.study._config import BUDGET, LIBRARY_DEFAULTS, TUNABLE
from balancer.study._strategies import make_batch_sampler
from balancer.study._study import TIMING_METRICS
from balancer.study._train import _TensorSource, default_model, train_run
from balancer.study._tune import GRID, GRID_POINTS, tune, without_test

FAST = {"dataset": "breastmnist", "train_limit": 160, "epochs": 2, "batch_size": 32,
        "progress": False, "bootstrap": 100}


@pytest.fixture(scope="module")
def breast():
    return prepare_data(StudyConfig(**FAST))


# ----------------------------------------------------------------------------- drs and crt
@pytest.mark.parametrize("name", ["drs", "crt"])
def test_deferred_sampler_is_shuffled_passes_then_balanced_with_the_same_steps(name):
    labels = np.repeat([0, 1, 2], [150, 30, 12])
    epochs, deferred, batch = 5, 2, 16
    sampler = make_batch_sampler(STRATEGIES[name], labels, batch_size=batch, epochs=epochs,
                                 finetune_epochs=0, seed=3, deferred_epochs=deferred)
    per_epoch = -(-len(labels) // batch)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == per_epoch  # the equal-step budget
        drawn = np.concatenate(batches)
        assert len(drawn) == len(labels)
        counts = np.bincount(labels[drawn], minlength=3)
        if epoch < epochs - deferred:  # one shuffled pass: every sample once
            assert sorted(drawn.tolist()) == list(range(len(labels)))
        else:  # balanced: every class within one batch's worth of the others
            assert counts.max() - counts.min() <= batch, counts


def test_crt_freezes_the_backbone_after_plain_training_and_retrains_a_new_classifier(breast):
    config = StudyConfig(**FAST, crt_epochs=1, seeds=(0,))
    device = torch.device("cpu")
    models = {}

    def run(name, cfg):
        def make():
            models[name] = default_model(breast, STRATEGIES[name], 0, cfg)
            return models[name]
        return train_run(_TensorSource(breast, cfg, device), make, breast.num_classes,
                         STRATEGIES[name], 0, cfg, device=device)

    crt = run("crt", config)
    plain = run("plain", StudyConfig(**{**config.to_dict(), "epochs": 1, "crt_epochs": 0,
                                        "drs_epochs": 0, "drw_epochs": 0,
                                        "strategies": ("plain",)}))
    plain2 = run("drs", StudyConfig(**{**config.to_dict(), "drs_epochs": 1}))
    assert crt.steps == plain2.steps == 2 * plain.steps
    # The backbone (weights and batch-norm statistics) is plain's after its first epoch ...
    for key, value in models["plain"].backbone.state_dict().items():
        torch.testing.assert_close(models["crt"].backbone.state_dict()[key], value, rtol=0,
                                   atol=0)
    # ... while the classifier was replaced and retrained.
    assert not torch.equal(models["crt"].head.weight, models["plain"].head.weight)
    # drs keeps training the whole network in its balanced phase.
    assert not torch.equal(models["drs"].backbone[0].weight, models["plain"].backbone[0].weight)


def test_drs_and_crt_are_rows_of_the_default_study():
    assert {"drs", "crt"} <= set(StudyConfig().strategies)
    assert StudyConfig().seeds == (0, 1, 2, 3, 4)


# ----------------------------------------------------------------------------- --jobs
def test_jobs_gives_the_results_of_one_job(breast):
    config = StudyConfig(**FAST, strategies=("plain", "crt", "balanced"), seeds=(0, 1))
    serial = run_study(config, breast)
    parallel = run_study(StudyConfig(**{**config.to_dict(), "jobs": 2}), breast)
    keep = lambda f: f[~f["metric"].isin(TIMING_METRICS)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(serial), keep(parallel))
    for key, probs in serial.attrs["predictions"].probs.items():
        for split in ("val", "test"):
            np.testing.assert_array_equal(probs[split],
                                          parallel.attrs["predictions"].probs[key][split])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"jobs": 0}, ValueError, r"jobs should be an integer >= 1.*--jobs 2"),
    ({"jobs": 1.5}, TypeError, r"jobs"),
    ({"jobs": 2, "device": "cuda"}, ValueError, r"jobs=2 .*device='cuda'.*--jobs 1"),
    ({"threshold": 1.0}, ValueError, r"threshold"),
    ({"threshold": 0.0}, ValueError, r"threshold"),
    ({"posthoc_tau": -1.0}, ValueError, r"posthoc_tau"),
    ({"drs_epochs": 13}, ValueError, r"drs_epochs.*\[0, epochs=12\]"),
    ({"crt_epochs": -1}, ValueError, r"crt_epochs"),
    ({"tuned": "yes"}, TypeError, r"tuned should be True"),
])
def test_bad_settings_name_the_setting(kwargs, error, match):
    with pytest.raises(error, match=match):
        StudyConfig(**kwargs)


def test_bad_jobs_on_the_command_line_fails_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["study", "--quick", "--jobs", "0", "--out", str(tmp_path / "x")])
    assert "jobs should be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- tuning
class _NoTest(dict):
    """A split mapping whose test split cannot be read."""

    def __getitem__(self, split):
        if split == "test":
            raise AssertionError("the tuning read the test split")
        return super().__getitem__(split)

    def values(self):
        raise AssertionError("the tuning iterated over every split")

    items = values


def _poisoned(data):
    poisoned = type(data)(_NoTest(data.images), _NoTest(data.labels), data.class_names,
                          data.source)
    with pytest.raises(AssertionError, match="read the test split"):
        poisoned.labels["test"]
    return poisoned


@pytest.mark.parametrize("jobs", [1, 2])
def test_tuning_reads_no_test_label_and_chooses_the_best_mean_validation_point(
        breast, jobs, monkeypatch):
    import balancer.study._study as study_module

    pools = []
    make_pool = study_module.make_pool

    def recording(*args, **kwargs):
        pools.append(make_pool(*args, **kwargs))
        return pools[-1]

    monkeypatch.setattr(study_module, "make_pool", recording)
    config = StudyConfig(**FAST, strategies=("plain", "focal", "crt"), seeds=(100, 101),
                         jobs=jobs)
    record = tune(config, _poisoned(breast))
    # --jobs N trains on N processes (one pool of N workers), --jobs 1 in this process.
    assert [pool._max_workers for pool in pools] == ([jobs] if jobs > 1 else [])
    # The grids: the same number of points for every strategy with a setting, none otherwise.
    assert set(record["scores"]) == {"focal", "crt", "plain+posthoc", "plain+threshold"}
    assert record["untuned"] == ["plain"]
    for name, table in record["scores"].items():
        assert len(table) == GRID_POINTS and all(len(row) == 2 for row in table)
        means = [np.mean(row) for row in table]
        assert record["chosen_index"][name] == int(np.argmax(means))
        assert record["choices"][name] == record["grid"][name][int(np.argmax(means))]
        assert all(0 <= v <= 1 for row in table for v in row)
    assert record["budget"] == {key: getattr(config, key) for key in BUDGET}
    assert set(record["settings"]) == {"focal_gamma", "crt_epochs", "posthoc_tau", "threshold"}


def test_tuning_scores_are_validation_scores_of_the_study_runs(breast):
    config = StudyConfig(**FAST, strategies=("focal",), seeds=(100,), posthoc=False)
    record = tune(config, breast)
    for point, row in zip(GRID["focal"], record["scores"]["focal"], strict=True):
        study = run_study(StudyConfig(**{**config.to_dict(), **point, "tuned": False}), breast)
        val = study[(study["split"] == "val") & (study["metric"] == "balanced_accuracy")]
        assert row == pytest.approx(val["value"].tolist(), abs=1e-12)


def test_without_test_keeps_train_and_val_only(breast):
    data = without_test(breast)
    assert set(data.images) == set(data.labels) == {"train", "val"}
    assert torch.equal(data.labels["val"], breast.labels["val"])


def test_every_grid_has_the_same_size_and_covers_the_tunable_settings():
    assert {len(points) for points in GRID.values()} == {GRID_POINTS}
    assert {name: tuple(points[0]) for name, points in GRID.items()} == TUNABLE
    for points in GRID.values():  # distinct points: no strategy gets fewer real choices
        assert len({json.dumps(p, sort_keys=True) for p in points}) == GRID_POINTS


def _record(tmp_path, monkeypatch, **budget):
    directory = tmp_path / "tuned"
    directory.mkdir()
    config = StudyConfig(dataset="breastmnist", tuned=False)
    record = {"budget": {**{key: getattr(config, key) for key in BUDGET}, **budget},
              "settings": {"focal_gamma": 0.5, "drs_epochs": 2, "posthoc_tau": 1.5},
              "run": "tune-breastmnist", "command": "balancer study --tune", "date": "today",
              "seeds": [100, 101], "grid_points": 3, "criterion": "validation",
              "grid": {"focal": [{"focal_gamma": g} for g in (2.0, 0.5, 1.0)]},
              "choices": {"focal": {"focal_gamma": 0.5}}}
    (directory / "breastmnist.json").write_text(json.dumps(record))
    monkeypatch.setattr(config_module, "TUNED_DIR", directory)
    return record


def test_a_shipped_record_sets_the_unset_settings_of_its_budget_only(tmp_path, monkeypatch):
    _record(tmp_path, monkeypatch)
    config = StudyConfig(dataset="breastmnist")
    assert (config.focal_gamma, config.drs_epochs, config.posthoc_tau) == (0.5, 2, 1.5)
    assert config.la_tau == LIBRARY_DEFAULTS["la_tau"]  # not in the record
    assert config.tuned_from["settings"] == {"focal_gamma": 0.5, "drs_epochs": 2,
                                             "posthoc_tau": 1.5}
    # A value given wins; a copied config keeps its values and its record.
    assert StudyConfig(dataset="breastmnist", focal_gamma=2.0).focal_gamma == 2.0
    copy = StudyConfig(**config.to_dict())
    assert copy.tuned_from == config.tuned_from and copy.focal_gamma == 0.5
    # Another budget, another data set, --quick or tuned=False: the library defaults.
    for other in ({"dataset": "breastmnist", "epochs": 6}, {"dataset": "retinamnist"},
                  {"dataset": "breastmnist", "quick": True},
                  {"dataset": "breastmnist", "tuned": False}):
        assert StudyConfig(**other).focal_gamma == LIBRARY_DEFAULTS["focal_gamma"], other
        assert StudyConfig(**other).posthoc_tau is None, other


def test_the_report_names_the_tuning_run_and_its_choices(tmp_path, monkeypatch):
    _record(tmp_path, monkeypatch, train_limit=160, epochs=2, batch_size=32)
    out = tmp_path / "run"
    assert main(["study", "--dataset", "breastmnist", "--train-limit", "160", "--epochs", "2",
                 "--batch-size", "32", "--seeds", "0", "--strategies", "plain,focal",
                 "--bootstrap", "100", "--no-progress", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Tuned settings" in report and "`tune-breastmnist`" in report
    assert "| focal | focal_gamma=2.0; focal_gamma=0.5; focal_gamma=1.0 | focal_gamma=0.5 | " \
           "focal_gamma=0.5 |" in report
    assert "fixed at 1.5 for every seed" in report  # plain+posthoc's tau from the record
    results = pd.read_csv(out / "results.csv")
    taus = results[(results["metric"] == "posthoc_tau") & (results["strategy"] == "plain+posthoc")]
    assert taus["value"].tolist() == [1.5]


def test_cli_tune_writes_the_record_and_a_report(tmp_path, capsys):
    out = tmp_path / "tune"
    assert main(["study", "--tune", "--quick", "--dataset", "breastmnist", "--strategies",
                 "plain,drs", "--no-progress", "--out", str(out)]) == 0
    record = json.loads((out / "tuned.json").read_text())
    assert record["seeds"] == [100, 101] and record["dataset"] == "breastmnist"
    assert set(record["choices"]) == {"drs", "plain+posthoc", "plain+threshold"}
    assert "No test label was read" in (out / "tune.md").read_text()
    assert "Chosen settings" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "match"), [
    (["--reference", "plain"], "--tune does not take --reference"),
    (["--resume"], "--tune does not take --resume"),
    (["--focal-gamma", "1"], "--tune does not take --focal-gamma"),
    (["--drs-epochs", "2"], "--tune does not take --drs-epochs"),
    (["--ordinal"], "--tune does not take --ordinal"),
    (["--dataset", "breastmnist,retinamnist"], "run --tune once per data set"),
])
def test_tune_with_options_that_make_no_sense_fails_before_training(tmp_path, capsys, args,
                                                                     match):
    with pytest.raises(SystemExit):
        main(["study", "--tune", "--quick", *args, "--out", str(tmp_path / "t")])
    assert match in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


# ----------------------------------------------------------------------------- the advice
def test_shipped_records_exist_and_the_library_advice_follows_their_finetune_choice():
    """The FineTuneSchedule default and examples/medical_imaging.py use the fine-tune phase the
    shipped tuning records chose for balanced+finetune (1 epoch, learning rate x0.1, all layers
    trained): change one and the other must follow."""
    import runpy
    from pathlib import Path

    from balancer import FineTuneSchedule
    from balancer.study._config import load_tuned

    choices = set()
    for name in ("retinamnist", "pneumoniamnist", "breastmnist"):
        record = load_tuned(name)
        assert record is not None, name
        # A budget key a record lacks (min_steps, added later) was not used: None.
        assert {key: record["budget"].get(key) for key in BUDGET} == {
            key: getattr(StudyConfig(tuned=False), key) for key in BUDGET}, name
        assert record["grid_points"] == GRID_POINTS
        assert set(GRID) - set(record["choices"]) <= {"plain+threshold"}  # binary data only
        choice = record["choices"]["balanced+finetune"]
        choices.add((choice["finetune_epochs"], choice["finetune_lr_scale"]))
    assert choices == {(1, 0.1)}
    assert FineTuneSchedule(12).finetune_epochs == 1
    example = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "medical_imaging.py"))
    assert (example["finetune_epochs"], example["finetune_lr_factor"],
            example["freeze_backbone"]) == (1, 0.1, 0)


def test_across_data_sets_ranks_only_rows_run_on_every_data_set(tmp_path):
    """plain+threshold exists for the two binary data sets only: it used to turn every
    Friedman statistic into NaN; it is now left out of the ranks, and the report says so."""
    out = tmp_path / "across"
    assert main(["study", "--quick", "--no-progress", "--dataset",
                 "retinamnist,pneumoniamnist,breastmnist", "--strategies", "plain,balanced",
                 "--seeds", "0", "--train-limit", "64", "--batch-size", "32",
                 "--bootstrap", "100", "--out", str(out)]) == 0
    across = pd.read_csv(out / "across.csv")
    assert "plain+threshold" not in set(across["strategy"])
    assert set(across["strategy"]) == {"plain", "balanced", "plain+posthoc", "balanced+posthoc"}
    assert across["mean_rank"].notna().all()
    report = (out / "across.md").read_text()
    assert "Left out of the ranks (not run on every data set): `plain+threshold`." in report
    assert "nan" not in report
