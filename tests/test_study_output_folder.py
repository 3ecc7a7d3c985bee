"""The study's output folder: a resume is refused when a setting that changes numbers differs
(the thread count, the budget) but not for one that only changes the report (--rarest), and a
folder holding any previous study's files (a tuning run's, a multi-label table) is refused
unless --overwrite, which replaces them."""

from __future__ import annotations

import pytest
from helpers.study import FAST

from balancer.__main__ import main
from balancer.study import StudyConfig


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


def test_a_multilabel_study_resumes_with_another_rarest_but_not_another_budget(tmp_path):
    """README: "Resuming with other training settings is refused (seeds and strategies may
    change)". --rarest only chooses which labels the report lists (every saved run holds the
    metrics of every label), yet a resume with another --rarest used to be refused."""
    from balancer.study._config import MultiLabelStudyConfig
    from balancer.study._outputs import prepare_out

    config = MultiLabelStudyConfig(quick=True)
    prepare_out(tmp_path, config=config.to_dict())
    (tmp_path / "runs").mkdir()  # a started study
    again = MultiLabelStudyConfig(**{**config.to_dict(), "rarest": 5})
    assert prepare_out(tmp_path, config=again.to_dict(), resume=True).done == {}
    longer = MultiLabelStudyConfig(**{**config.to_dict(), "epochs": 3})
    with pytest.raises(ValueError, match=r"other settings \(epochs: 10 then, 3 now\)"):
        prepare_out(tmp_path, config=longer.to_dict(), resume=True)


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
