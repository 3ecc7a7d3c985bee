"""--min-steps: a study's budget in optimizer steps. The epochs are raised so that every run
takes at least K steps, phases given in epochs keep their share of the run, each run records
the steps of its shortest phase, and runs below the floor are named on the console and in the
report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study import MultiLabelStudyConfig, StudyConfig, prepare_data, run_study
from balancer.study._config import (
    MIN_PHASE_STEPS,
    MIN_RUN_STEPS,
    below_floor,
    planned_steps,
)
from balancer.study._data import load_multilabel_data
from balancer.study._report import _budget_lines


def _table(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    pd.DataFrame({"a": rng.standard_normal(n) + y, "b": rng.standard_normal(n),
                  "y": y}).to_csv(path, index=False)
    return path


def _ml_npz(path, n=90, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 3)) < [0.4, 0.3, 0.25]).astype(int)
    X = Y @ rng.standard_normal((3, 4)) + rng.standard_normal((n, 4))
    np.savez(path, X=X, Y=Y)
    return path


def test_epochs_are_raised_to_the_fewest_that_give_min_steps():
    config = StudyConfig(table="t.csv", label_col="y", epochs=12, batch_size=64, min_steps=100,
                         tuned=False)
    config.apply_min_steps(168)  # ceil(168 / 64) = 3 steps per epoch
    assert config.epochs == 34 and 33 * 3 < 100 <= 34 * 3
    assert config.budget_from == {
        "epochs": 12, "min_steps": 100, "steps_per_epoch": 3,
        "phases": {"finetune_epochs": [1, 3], "drw_epochs": [3, 9], "drs_epochs": [3, 9],
                   "crt_epochs": [3, 9]}}
    # A second call (run_study after prepare_data) changes nothing, and a re-validation keeps it.
    config.apply_min_steps(168)
    config.validate()
    assert (config.epochs, config.crt_epochs) == (34, 9)


def test_a_run_that_already_has_min_steps_is_unchanged():
    config = StudyConfig(table="t.csv", label_col="y", epochs=12, min_steps=36, tuned=False)
    config.apply_min_steps(168)
    assert (config.epochs, config.budget_from, config.crt_epochs) == (12, None, 3)
    plain = StudyConfig(table="t.csv", label_col="y", epochs=12, tuned=False)
    plain.apply_min_steps(10)
    assert (plain.epochs, plain.budget_from) == (12, None)


@pytest.mark.parametrize(("epochs", "phase", "rows", "min_steps"),
                         [(2, 1, 64, 1000), (12, 11, 640, 5000), (5, 1, 30, 47), (3, 2, 64, 7)])
def test_a_phase_keeps_its_share_and_never_grows_to_the_whole_run(epochs, phase, rows,
                                                                  min_steps):
    config = StudyConfig(table="t.csv", label_col="y", epochs=epochs, batch_size=64,
                         crt_epochs=phase, min_steps=min_steps, tuned=False)
    config.apply_min_steps(rows)
    raised = config.epochs
    assert raised * -(-rows // 64) >= min_steps
    assert 1 <= config.crt_epochs < raised  # shorter than the run, as it was
    if raised > epochs:
        assert abs(config.crt_epochs / raised - phase / epochs) <= max(1 / raised,
                                                                      1 / (raised - 1))


def test_a_whole_run_phase_of_a_short_budget_stays_whole_and_named():
    # epochs=2 caps crt's default 3 at 2: the phase covers the run (named by the report), and
    # stays so when the run grows, rather than becoming a phase it never was.
    config = StudyConfig(table="t.csv", label_col="y", epochs=2, min_steps=50, tuned=False,
                         strategies=("crt",))
    config.apply_min_steps(64)
    assert config.crt_epochs == config.epochs == 50


@pytest.mark.parametrize(("value", "error", "match"), [
    (0, ValueError, r"min_steps should be .*>= 1.*but got min_steps=0.*--min-steps 100"),
    ("many", TypeError, r"min_steps should be an integer.*'many'"),
])
def test_bad_min_steps_is_refused(value, error, match):
    with pytest.raises(error, match=match):
        StudyConfig(min_steps=value)
    with pytest.raises(error, match=match):
        MultiLabelStudyConfig(min_steps=value)


def test_bad_min_steps_on_the_command_line_names_the_flag(capsys, no_training):
    with pytest.raises(SystemExit):
        main(["study", "--quick", "--min-steps", "0", "--out", "/tmp/never"])
    assert "--min-steps should be" in capsys.readouterr().err


def test_runs_take_min_steps_and_record_their_shortest_phase(tmp_path, capsys):
    path = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert main(["study", "--table", str(path), "--label-col", "y", "--seeds", "0",
                 "--strategies", "plain,crt,balanced+finetune", "--no-posthoc", "--no-progress",
                 "--bootstrap", "100", "--epochs", "4", "--min-steps", "60",
                 "--batch-size", "16", "--crt-epochs", "1", "--finetune-epochs", "1",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    results = pd.read_csv(out / "results.csv")
    steps = results[results["split"].eq("run")].pivot_table(
        index="strategy", columns="metric", values="value")
    config = json.loads((out / "config.json").read_text())
    config = config.get("config", config)
    rows = len(prepare_data(StudyConfig(table=str(path), label_col="y", batch_size=16)
                            ).labels["train"])
    per_epoch = -(-rows // 16)
    epochs = -(-60 // per_epoch)
    assert config["epochs"] == epochs and config["budget_from"]["epochs"] == 4
    assert (steps["steps"] == epochs * per_epoch).all() and epochs * per_epoch >= 60
    # The loop's counts are the plan's: crt's head and the fine-tune phase, given as 1 of 4
    # epochs, keep their quarter of the run.
    crt = config["crt_epochs"]
    assert crt == config["finetune_epochs"] == max(1, int(epochs / 4 + 0.5)) < epochs
    assert steps.loc["crt", "shortest_phase_steps"] == crt * per_epoch
    assert steps.loc["balanced+finetune", "shortest_phase_steps"] == (
        config["finetune_epochs"] * per_epoch)
    assert steps.loc["plain", "shortest_phase_steps"] == epochs * per_epoch
    report = (out / "report.md").read_text()
    assert f"Budget raised by `--min-steps 60`:** 4 -> {epochs} epochs" in report
    # Those runs are still below the floor: named on the console and in the report, with the fix.
    below = [s for s in ("plain", "crt", "balanced+finetune")
             if below_floor(steps.loc[s, "steps"], steps.loc[s, "shortest_phase_steps"])]
    assert below
    line = next(line for line in err.splitlines() if "warning" in line)
    for name in below:
        assert f"`{name}` ({int(steps.loc[name, 'steps'])} steps, shortest phase " \
               f"{int(steps.loc[name, 'shortest_phase_steps'])})" in report
        assert f"{name} ({int(steps.loc[name, 'steps'])} steps" in line
    assert f"--min-steps {MIN_RUN_STEPS}" in line and f"`--min-steps {MIN_RUN_STEPS}`" in report


def test_the_multilabel_study_takes_min_steps_too_with_data_the_caller_loaded(tmp_path):
    path = str(_ml_npz(tmp_path / "m.npz"))
    config = MultiLabelStudyConfig(data=path, seeds=(0,),
                                   strategies=("plain", "label-balanced+finetune"),
                                   epochs=2, batch_size=16, min_steps=30, bootstrap=100,
                                   progress=False)
    results = run_study(config, load_multilabel_data(data=path))  # not through prepare_data
    rows = results.attrs["rows"]["train"]
    per_epoch = -(-rows // 16)
    run = results[results["split"].eq("run")].pivot_table(index="strategy", columns="metric",
                                                          values="value")
    assert config.epochs == -(-30 // per_epoch) > 2
    assert (run["steps"] == config.epochs * per_epoch).all()
    expected = planned_steps(config, rows)
    for name in config.strategies:
        assert run.loc[name, "shortest_phase_steps"] == expected[name][1]
    assert expected["label-balanced+finetune"][1] == config.finetune_epochs * per_epoch
    assert 1 <= config.finetune_epochs < config.epochs


def _results(steps: dict[str, tuple[int, int]]) -> pd.DataFrame:
    rows = [(name, seed, "run", metric, float(value)) for name, (total, shortest) in steps.items()
            for seed in (0, 1) for metric, value in (("steps", total),
                                                     ("shortest_phase_steps", shortest))]
    return pd.DataFrame(rows, columns=["strategy", "seed", "split", "metric", "value"])


def test_budget_lines_name_each_run_below_the_floor_and_the_fix():
    config = StudyConfig(table="t.csv", label_col="y", strategies=("plain", "crt", "drs"),
                         tuned=False)
    results = _results({"plain": (MIN_RUN_STEPS, MIN_RUN_STEPS),
                        "crt": (MIN_RUN_STEPS, MIN_PHASE_STEPS - 1),
                        "drs": (MIN_RUN_STEPS - 1, MIN_RUN_STEPS - 1)})
    text = "\n".join(_budget_lines(results, config))
    assert f"`crt` ({MIN_RUN_STEPS} steps, shortest phase {MIN_PHASE_STEPS - 1})" in text
    assert f"`drs` ({MIN_RUN_STEPS - 1} steps" in text
    assert "`plain`" not in text and "2 strategy(ies)" in text
    assert f"--min-steps {MIN_RUN_STEPS}" in text
    at_floor = _results({"plain": (MIN_RUN_STEPS, MIN_PHASE_STEPS)})
    assert _budget_lines(at_floor, config) == []


def test_a_tuning_record_is_made_for_and_matched_with_the_given_budget(tmp_path, monkeypatch):
    import balancer.study._train as train_module

    path = _table(tmp_path / "t.csv", n=120)
    seen = []
    real = train_module.train_and_evaluate

    def spy(data, strategy, seed, config, **kwargs):
        seen.append((config.epochs, config.crt_epochs))
        return real(data, strategy, seed, config, **kwargs)

    monkeypatch.setattr(train_module, "train_and_evaluate", spy)
    flags = ["--table", str(path), "--label-col", "y", "--strategies", "crt", "--no-posthoc",
             "--epochs", "4", "--batch-size", "16", "--min-steps", "40", "--no-progress"]
    assert main(["study", "--tune", *flags, "--out", str(tmp_path / "tune")]) == 0
    record = json.loads((tmp_path / "tune" / "tuned.json").read_text())
    # Made for the given budget, its grid in the given epochs (crt's 3, 1, 6 capped at 4) ...
    assert (record["budget"]["epochs"], record["budget"]["min_steps"]) == (4, 40)
    assert record["grid"]["crt"] == [{"crt_epochs": 3}, {"crt_epochs": 1}, {"crt_epochs": 4}]
    # ... and trained at the raised epochs, each phase keeping its share (a whole run stays one).
    raised = seen[0][0]
    assert raised > 4 and {epochs for epochs, _ in seen} == {raised}
    assert sorted({crt for _, crt in seen}) == sorted(
        {max(1, min(int(3 * raised / 4 + 0.5), raised - 1)), max(1, int(raised / 4 + 0.5)),
         raised})
    # A study with the same flags takes the record, scaled the same way.
    config = StudyConfig(table=str(path), label_col="y", strategies=("crt",), posthoc=False,
                         epochs=4, batch_size=16, min_steps=40,
                         tuned_file=str(tmp_path / "tune" / "tuned.json"))
    assert config.tuned_from["applies"]
    chosen = record["settings"]["crt_epochs"]
    prepare_data(config)
    assert config.epochs == raised
    assert config.crt_epochs == (raised if chosen == 4 else
                                 max(1, min(int(chosen * raised / 4 + 0.5), raised - 1)))
