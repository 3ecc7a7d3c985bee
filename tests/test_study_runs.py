"""Run folders never lose a result: checked before training, refused when they hold a study,
written atomically, each run saved as it finishes, resumable (issue 12)."""

import json

import numpy as np
import pandas as pd
import pytest

import balancer.study._report
import balancer.study._train
from balancer.__main__ import main
from balancer.study._outputs import atomic_write
from balancer.study._study import TIMING_METRICS

FAST = ["--quick", "--no-progress", "--strategies", "plain,balanced", "--seeds", "0,1",
        "--train-limit", "64", "--batch-size", "32"]


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the output folder was checked")
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", refuse)
    monkeypatch.setattr(balancer.study, "train_and_evaluate", refuse, raising=False)


def _error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_out_under_a_file_fails_before_training(tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("x")
    err = _error([*FAST, "--out", str(tmp_path / "file" / "sub")], capsys)
    assert err.startswith(f"balancer study: error: --out '{tmp_path / 'file' / 'sub'}' lies under "
                          f"the file '{tmp_path / 'file'}'"), err


def test_out_that_cannot_be_written_fails_before_training(tmp_path, capsys, no_training):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root can write anyway
            pytest.skip("this user can write to a read-only folder")
        err = _error([*FAST, "--out", str(locked / "run")], capsys)
        assert "cannot be written" in err
    finally:
        locked.chmod(0o700)


def test_previous_study_is_not_overwritten_without_overwrite(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["study", *FAST, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    calls = []
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate",
                        lambda *a, **k: calls.append(1) or pytest.fail("trained"))
    err = _error([*FAST, "--out", str(out)], capsys)
    assert err.startswith(f"balancer study: error: --out '{out}' already holds a study "
                          f"(results.csv, summary.csv, paired.csv, report.md"), err
    assert "--overwrite to replace it, --resume to continue it" in err
    assert not calls
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_overwrite_never_mixes_two_studies_even_when_interrupted(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["study", *FAST, "--out", str(out)]) == 0

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(balancer.study._report, "_plot_tradeoff", interrupt)
    import time

    started = time.time_ns()
    with pytest.raises(KeyboardInterrupt):
        main(["study", *FAST, "--seeds", "5", "--out", str(out), "--overwrite"])
    # The old study is gone entirely: every file left was written by the new one, which did
    # not get as far as its report.
    assert not (out / "report.md").exists()
    assert all(p.stat().st_mtime_ns >= started for p in out.rglob("*") if p.is_file())
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["balanced__seed5.csv", "balanced__seed5.npz", "plain__seed5.csv",
                    "plain__seed5.npz"]
    if (out / "results.csv").exists():
        assert set(pd.read_csv(out / "results.csv")["seed"]) == {5}
    assert not [p for p in out.rglob(".*tmp-*")]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old\n")

    def half_then_fail(tmp):
        tmp.write_text("new but only ha")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]
    atomic_write(target, lambda tmp: tmp.write_text("new\n"))
    assert target.read_text() == "new\n"


def test_interrupted_study_keeps_finished_runs_and_resume_trains_only_the_rest(
        tmp_path, capsys, monkeypatch):
    reference = tmp_path / "reference"
    assert main(["study", *FAST, "--out", str(reference)]) == 0

    out = tmp_path / "run"
    real = balancer.study._train.train_and_evaluate
    trained = []

    def stop_at_third(data, strategy, seed, config, **kwargs):
        if len(trained) == 2:
            raise KeyboardInterrupt
        trained.append((strategy.name, seed))
        return real(data, strategy, seed, config, **kwargs)
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        main(["study", *FAST, "--out", str(out)])
    saved = sorted(p.name for p in (out / "runs").glob("*.csv"))
    assert saved == ["plain__seed0.csv", "plain__seed1.csv"]
    assert not (out / "report.md").exists()

    trained.clear()
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate",
                        lambda *a, **k: trained.append((a[1].name, a[2])) or real(*a, **k))
    assert main(["study", *FAST, "--out", str(out), "--resume"]) == 0
    assert trained == [("balanced", 0), ("balanced", 1)]
    assert "Resuming" in capsys.readouterr().err
    ours, theirs = (pd.read_csv(p / "results.csv") for p in (out, reference))
    keep = lambda f: f[~f["metric"].isin(TIMING_METRICS)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(ours), keep(theirs))


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["study", *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    err = _error([*FAST, "--lr", "0.01", "--out", str(out), "--resume"], capsys)
    assert "holds a study with other settings (lr: 0.002 then, 0.01 now)" in err
    err = _error([*FAST, "--resume"], capsys)
    assert "--resume continues the study in a run folder; pass it with --out DIR" in err
    err = _error([*FAST, "--resume", "--overwrite", "--out", str(out)], capsys)
    assert "pass at most one of overwrite" in err


def test_resume_config_is_saved_before_training(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", interrupt)
    with pytest.raises(KeyboardInterrupt):
        main(["study", *FAST, "--out", str(out)])
    saved = json.loads((out / "study.json").read_text())
    assert saved["strategies"] == ["plain", "balanced"] and saved["seeds"] == [0, 1]


def test_report_marks_nothing_partial_after_a_full_run(tmp_path):
    out = tmp_path / "run"
    assert main(["study", *FAST, "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    per_run = pd.concat([pd.read_csv(out / "runs" / f"{name}__seed{seed}.csv")
                         for name in ("plain", "balanced") for seed in (0, 1)])
    trained = results[results["strategy"].isin(["plain", "balanced"])]
    pd.testing.assert_frame_equal(trained.reset_index(drop=True),
                                  per_run.reset_index(drop=True), check_exact=False)
    derived = set(results["strategy"]) - {"plain", "balanced"}
    assert derived == {"plain+posthoc", "balanced+posthoc"}  # recomputed, not saved
    with np.load(out / "runs" / "plain__seed0.npz") as arrays:
        assert arrays["test"].shape == (400, 5)
        np.testing.assert_allclose(arrays["test"].sum(1), 1.0)
