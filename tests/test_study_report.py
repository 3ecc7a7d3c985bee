"""report.md opens with what wins, names its reference row, prints p-values honestly and records
the environment it ran in.

Most tests write a report from synthetic predictions (no training): each strategy's test
probabilities are drawn from a seeded generator, so the paired statistics are real and a test
can make one row clearly better than the reference, or no row at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balancer.study._report import format_p, verdict_lines

STRATEGIES = ("plain", "weighted", "balanced")
CLASSES = 3


def _probs(labels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Softmax of noise plus ``strength`` on the true class: larger is a better model."""
    logits = rng.normal(size=(len(labels), CLASSES))
    logits[np.arange(len(labels)), labels] += strength
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def _write(tmp_path: Path, *, seeds: tuple[int, ...], strengths: dict[str, float],
           info_extra: dict | None = None, cpu: bool = True, **settings) -> str:
    """Write a single-label report of ``STRATEGIES`` from synthetic predictions; its text."""
    from balancer.study import StudyConfig
    from balancer.study._metrics import Predictions, classification_metrics
    from balancer.study._outputs import COLUMNS
    from balancer.study._report import write_outputs

    rng = np.random.default_rng(0)
    labels = {"val": rng.choice(CLASSES, 200, p=[0.6, 0.3, 0.1]),
              "test": rng.choice(CLASSES, 400, p=[0.6, 0.3, 0.1])}
    rows, probs = [], {}
    for name in STRATEGIES:
        for seed in seeds:
            generator = np.random.default_rng([seed, STRATEGIES.index(name)])
            probs[(name, seed)] = {split: _probs(labels[split], strengths[name], generator)
                                   for split in ("val", "test")}
            for split in ("val", "test"):
                metrics = classification_metrics(probs[(name, seed)][split], labels[split],
                                                 num_classes=CLASSES)
                rows += [(name, seed, split, m, v) for m, v in metrics.items()]
            rows += [(name, seed, "run", "selected_epoch", 1.0), (name, seed, "run", "steps", 8.0),
                     (name, seed, "run", "seconds", 10.0 + seed)]
            if cpu:  # a run folder from before CPU time was measured has no such row
                rows.append((name, seed, "run", "cpu_seconds", 1.0 + STRATEGIES.index(name)))
    results = pd.DataFrame(rows, columns=COLUMNS)
    config = StudyConfig(strategies=STRATEGIES, seeds=seeds, progress=False, bootstrap=100,
                         epochs=2, **settings)
    info = {"class_names": ["a", "b", "c"], "source": "synthetic", "tabular": False,
            "counts": {s: np.bincount(labels.get(s, labels["val"]), minlength=CLASSES).tolist()
                       for s in ("train", "val", "test")},
            "dataset_key": None, "seconds": 3.0,
            "predictions": Predictions(labels, probs), **(info_extra or {})}
    write_outputs(results, config, tmp_path, command="balancer study (synthetic)", info=info)
    return (tmp_path / "report.md").read_text()


@pytest.fixture(autouse=True)
def _no_png(monkeypatch):
    """The report's text is checked here, not its plots: skip rendering them (seconds each)."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr("balancer.study._report._save", lambda figure, path: plt.close(figure))


def _section(report: str, title: str) -> str:
    return report.split(f"## {title}")[1].split("\n## ")[0]


# ------------------------------------------------------------------------------- what wins
def test_report_opens_with_the_significant_winner_and_its_numbers(tmp_path):
    report = _write(tmp_path, seeds=(0, 1, 2),
                    strengths={"plain": 0.5, "weighted": 3.0, "balanced": 0.5})
    # The verdict comes first: before the data line, the command and the main table.
    assert report.index("## What wins (test split)") < report.index("Data: ")
    assert report.index("## What wins") < report.index("## Results (test split)")
    paired = pd.read_csv(tmp_path / "paired.csv")
    row = paired[(paired["strategy"] == "weighted") & (paired["metric"] == "accuracy")].iloc[0]
    assert row["significant"]
    line = next(t for t in _section(report, "What wins").splitlines()
                if t.startswith("- **accuracy**"))
    assert line.startswith("- **accuracy** (highest is best): `weighted` has the highest mean")
    assert (f"{row.difference:+.3f} vs `plain`, 95% CI [{row.ci_low:+.3f}, {row.ci_high:+.3f}], "
            f"p {'< 0.001' if row.p_value < 0.001 else f'= {format_p(row.p_value)}'}: "
            f"**significantly better** than `plain`.") in line
    assert "No row is significantly better" not in report


def test_report_says_plainly_when_no_row_beats_the_reference(tmp_path):
    # Rows a little weaker than the reference: some may still have the best mean of a metric.
    report = _write(tmp_path, seeds=(0, 1, 2),
                    strengths={"plain": 1.2, "weighted": 1.0, "balanced": 1.1})
    section = _section(report, "What wins")
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert not (paired["significant"] & paired["better"]).any()
    assert "**No row is significantly better than `plain`** on any of these metrics with 3 " \
           "seeds." in section
    assert "**significantly better**" not in section
    # Every headline metric has its sentence, and a best row that is not the reference is
    # called "not significant", never a winner.
    for words in ("accuracy", "balanced accuracy", "macro-F1", "macro AUC", "NLL", "ECE"):
        line = next(t for t in section.splitlines() if t.startswith(f"- **{words}**"))
        assert "the reference row" in line or line.endswith(": not significant.")


def test_report_with_one_seed_says_no_difference_can_be_significant(tmp_path):
    report = _write(tmp_path, seeds=(0,), strengths={"plain": 0.5, "weighted": 3.0,
                                                     "balanced": 0.5})
    section = _section(report, "What wins")
    assert "p n/a: not significant." in section
    assert ("**No row is significantly better than `plain`**: with 1 seed(s) the paired test "
            "over seeds cannot run (it needs at least 3)") in section


def test_a_best_row_tied_with_others_is_named_with_them():
    means = pd.DataFrame({"accuracy": [0.5, 0.7, 0.7]}, index=["plain", "drs", "balanced"])
    paired = pd.DataFrame({"strategy": ["drs", "balanced"], "metric": ["accuracy"] * 2,
                           "difference": [0.2, 0.2], "ci_low": [0.1, 0.1], "ci_high": [0.3, 0.3],
                           "p_value": [0.0004, 0.0004], "better": [True, True],
                           "significant": [True, True]})
    lines = verdict_lines(means, paired, reference="plain", headline={"accuracy": True},
                          words={}, seeds=5, min_seeds=3)
    line = next(t for t in lines if t.startswith("- **accuracy**"))
    assert line == ("- **accuracy** (highest is best): `drs` (tied with `balanced`) has the "
                    "highest mean (0.700): +0.200 vs `plain`, 95% CI [+0.100, +0.300], "
                    "p < 0.001: **significantly better** than `plain`.")
    # The reference itself best: it is named as such, with no difference to itself.
    lines = verdict_lines(means.loc[["plain"]].assign(accuracy=[0.9]).reindex(
        ["plain", "drs"]).fillna(0.1), paired.iloc[:1].assign(better=False, difference=-0.8),
        reference="plain", headline={"accuracy": True}, words={}, seeds=5, min_seeds=3)
    assert "- **accuracy** (highest is best): `plain`, the reference row, has the highest mean " \
           "(0.900)." in lines


# ------------------------------------------------------------------------------- p-values
@pytest.mark.parametrize(("p", "text"), [(0.0, "< 0.001"), (4e-7, "< 0.001"), (0.00099, "< 0.001"),
                                         (0.001, "0.001"), (0.00123, "0.00123"),
                                         (0.0495, "0.0495"), (0.0504, "0.0504"), (0.1, "0.100"),
                                         (0.5784, "0.578"), (1.0, "1.000"),
                                         (float("nan"), "n/a")])
def test_p_values_print_as_less_than_a_thousandth_or_with_enough_digits(p, text):
    assert format_p(p) == text


def test_no_table_prints_a_p_value_of_zero():
    from balancer.study import StudyConfig
    from balancer.study._metrics import ML_HEADLINE
    from balancer.study._report import _ml_paired_lines, _paired_section
    from balancer.study._stats import BOOTSTRAP_METRICS

    table = pd.DataFrame({"strategy": "weighted", "metric": list(BOOTSTRAP_METRICS),
                          "difference": 0.2, "ci_low": 0.1, "ci_high": 0.3, "p_value": 2e-5,
                          "seeds": 5, "better": True, "significant": True})
    results = pd.DataFrame({"strategy": ["plain", "weighted"], "seed": [0, 0],
                            "split": "test", "metric": "accuracy", "value": 0.5})
    for seed in (1, 2):
        results = pd.concat([results, results.iloc[:2].assign(seed=seed)])
    single = "\n".join(_paired_section(results, StudyConfig(progress=False), table))
    assert "p<0.001 **sig.**" in single and "0.000" not in single
    multi = "\n".join(_ml_paired_lines(table.assign(metric=[*ML_HEADLINE, "x", "y"]),
                                       "plain", 5))
    assert "| < 0.001 |" in multi and "0.000" not in multi


# ------------------------------------------------------------------------- reference name
@pytest.mark.parametrize(("reference", "shown"), [(None, "plain"), ("weighted", "weighted")])
def test_settings_name_the_reference_row_never_none(tmp_path, reference, shown):
    report = _write(tmp_path, seeds=(0,), strengths=dict.fromkeys(STRATEGIES, 1.0),
                    reference=reference)
    settings = _section(report, "Settings")
    assert re.search(rf"^- `reference` = `{shown}`", settings, re.MULTILINE)
    assert "`reference` = `None`" not in report
    assert f"## Paired differences to `{shown}`" in report


# ------------------------------------------------------------------------------ environment
ENVIRONMENT_KEYS = {"cpu", "cpu_count", "usable_cpus", "os", "python", "torch", "torch_build",
                    "torch_threads", "jobs", "numpy", "balancer", "device", "gpu",
                    "load_average"}


def test_report_and_config_record_the_environment_of_the_run(tmp_path):
    import platform

    import torch

    from balancer import __version__
    from balancer.study._environment import describe_environment

    recorded = {**describe_environment(device="cpu", threads=3, jobs=2),
                "load_average": [7.25, 6.5, 5.0]}  # as if read when the run started
    report = _write(tmp_path, seeds=(0,), strengths=dict.fromkeys(STRATEGIES, 1.0),
                    info_extra={"environment": recorded})
    section = _section(report, "Environment")
    assert f"- CPU: {recorded['cpu']}; {recorded['cpu_count']} logical CPUs" in section
    assert f"- OS: {platform.platform()}; Python {platform.python_version()}" in section
    assert (f"- torch {torch.__version__} ({recorded['torch_build']} build); 3 torch thread(s) "
            f"per training process, 2 process(es) at once") in section
    assert f"- numpy {np.__version__}; balancer {__version__}" in section
    assert "- device: cpu" in section
    assert "- load average when the run started: 7.25 / 6.50 / 5.00 (1 / 5 / 15 min)" in section
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["environment"] == recorded
    assert set(saved["environment"]) == ENVIRONMENT_KEYS


def test_a_report_without_a_recorded_environment_reads_it_when_written(tmp_path):
    report = _write(tmp_path, seeds=(0,), strengths=dict.fromkeys(STRATEGIES, 1.0))
    assert "- load average when this report was written: " in _section(report, "Environment")


def test_the_environment_is_no_setting_so_resume_still_works(tmp_path, capsys):
    """study.json (which --resume compares) never holds the environment, so a folder written
    before the environment was recorded resumes, and the resumed report records it."""
    from balancer.__main__ import main

    rng = np.random.default_rng(0)
    y = (rng.random(240) < 0.25).astype(int)
    pd.DataFrame({"a": rng.standard_normal(240) + y, "b": rng.standard_normal(240),
                  "y": y}).to_csv(tmp_path / "t.csv", index=False)
    argv = ["study", "--quick", "--table", str(tmp_path / "t.csv"), "--label-col", "y",
            "--strategies", "plain,weighted", "--no-posthoc", "--no-progress", "--bootstrap",
            "100", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    study = json.loads((tmp_path / "o" / "study.json").read_text())
    assert "environment" not in study
    assert set(json.loads((tmp_path / "o" / "config.json").read_text())["environment"]) \
        == ENVIRONMENT_KEYS
    # A folder of before: no environment anywhere, the report gone (an interrupted study).
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    del config["environment"]
    (tmp_path / "o" / "config.json").write_text(json.dumps(config))
    (tmp_path / "o" / "report.md").unlink()
    assert main([*argv, "--resume"]) == 0
    capsys.readouterr()
    report = (tmp_path / "o" / "report.md").read_text()
    assert "- load average when the run started: " in _section(report, "Environment")


@pytest.fixture(scope="module")
def multilabel_study(tmp_path_factory):
    """A quick multi-label study of two rows (seconds): its folder."""
    from balancer.__main__ import main

    out = tmp_path_factory.mktemp("ml") / "run"
    assert main(["study", "--multilabel", "--quick", "--strategies", "plain,pos-weight",
                 "--no-progress", "--bootstrap", "100", "--out", str(out)]) == 0
    return out


def test_the_multilabel_report_opens_with_what_wins_and_records_the_environment(
        multilabel_study):
    out = multilabel_study
    report = (out / "report.md").read_text()
    assert report.index("## What wins (test split)") < report.index("Command:")
    section = _section(report, "What wins")
    for words in ("macro AUROC", "macro AUPRC", "macro-F1", "micro-F1"):
        assert re.search(rf"^- \*\*{words}\*\* \(highest is best\): `(plain|pos-weight)`",
                         section, re.MULTILINE)
    assert "**No row is significantly better than `plain`**: with 1 seed(s)" in section
    assert "- load average when the run started: " in _section(report, "Environment")
    saved = json.loads((out / "config.json").read_text())
    assert set(saved["environment"]) == ENVIRONMENT_KEYS
    assert saved["epochs"] == 2  # the settings stay where they were


# -------------------------------------------------------------------------------- CPU time
def test_the_runs_table_shows_cpu_and_wall_time_and_says_what_they_are(tmp_path):
    report = _write(tmp_path / "new", seeds=(0, 1), strengths=dict.fromkeys(STRATEGIES, 1.0))
    runs = _section(report, "Runs")
    assert "| strategy | epoch evaluated (1-based, of 2; mean) | optimizer steps | CPU s per run " \
           "| wall s per run |" in runs
    # CPU: 1, 2, 3 s by strategy; wall: 10 and 11 s by seed, so 10.5 s on average.
    assert "| plain | 2.0 | 8 | 1.0 | 10.5 |" in runs and "| balanced | 2.0 | 8 | 3.0 | 10.5 |" in runs
    assert "`time.process_time`" in runs
    old = _write(tmp_path / "old", seeds=(0,), strengths=dict.fromkeys(STRATEGIES, 1.0),
                 cpu=False)
    assert "| plain | 2.0 | 8 | n/a | 10.0 |" in _section(old, "Runs")


@pytest.fixture(scope="module")
def table_study(tmp_path_factory):
    """A quick study of a feature table (the MLP), two rows and two seeds: its folder."""
    from balancer.__main__ import main

    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    y = (rng.random(240) < 0.25).astype(int)
    pd.DataFrame({"a": rng.standard_normal(240) + y, "y": y}).to_csv(folder / "t.csv",
                                                                     index=False)
    assert main(["study", "--quick", "--table", str(folder / "t.csv"), "--label-col", "y",
                 "--strategies", "plain,balanced", "--seeds", "0,1", "--no-posthoc",
                 "--no-progress", "--bootstrap", "100", "--out", str(folder / "o")]) == 0
    return folder / "o"


def test_every_trained_run_records_its_cpu_seconds(table_study):
    results = pd.read_csv(table_study / "results.csv")
    runs = results[results["split"] == "run"].pivot_table(index=["strategy", "seed"],
                                                          columns="metric", values="value")
    assert len(runs) == 4
    assert (runs["cpu_seconds"] > 0).all() and (runs["seconds"] > 0).all()
    assert runs["cpu_seconds"].ne(runs["seconds"]).all()  # two clocks, not one copied


# ------------------------------------------------------------------- settings of the model
def test_a_table_study_lists_the_mlps_settings_not_the_cnns(table_study):
    settings = _section((table_study / "report.md").read_text(), "Settings")
    assert "`augment`" not in settings
    assert "- `width` = `16` (the MLP's two hidden layers have 4 x width = 64 units)" in settings


def test_an_image_study_lists_the_cnns_width_and_augmentation(tmp_path):
    settings = _section(_write(tmp_path, seeds=(0,), strengths=dict.fromkeys(STRATEGIES, 1.0)),
                        "Settings")
    assert "- `augment` = `True`" in settings
    assert "- `width` = `16` (channels of the CNN's first block)" in settings


def test_the_multilabel_report_lists_its_mlps_settings(multilabel_study):
    report = (multilabel_study / "report.md").read_text()
    assert "the same MLP (two hidden layers of 64 units, batch norm, ReLU; no augmentation)" \
        in report
    settings = _section(report, "Settings")
    assert "- `width` = `64` (units per hidden layer of the MLP)" in settings
    assert "- `reference` = `plain`" in settings and "`augment`" not in settings
    assert "- `epochs` = `2`" in settings


def test_a_compare_report_names_the_callers_model_and_no_cnn_settings(tmp_path):
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from balancer.study import compare

    generator = torch.Generator().manual_seed(0)
    parts = []
    for n in (128, 64, 64):
        y = (torch.rand(n, generator=generator) < 0.3).long()
        parts.append(TensorDataset(torch.randn(n, 4, generator=generator) + y[:, None], y))
    compare(*parts, lambda c: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, c)),
            strategies=("plain", "weighted"), seeds=(0,), epochs=1, batch_size=32,
            out=tmp_path / "o", bootstrap=100, posthoc=False, progress=False)
    report = (tmp_path / "o" / "report.md").read_text()
    assert "**Model.** The caller's own model (`compare(..., model_fn)`)" in report
    assert "CNN" not in report
    settings = _section(report, "Settings")
    assert "`width`" not in settings and "`augment`" not in settings


def test_the_wall_time_line_gives_the_invocation_and_the_runs_own_time(tmp_path):
    # A --resume that trains nothing takes seconds; the runs it loaded took far longer, and the
    # report must not read as if the whole study took the invocation's few seconds.
    report = _write(tmp_path, seeds=(0, 1), strengths=dict.fromkeys(STRATEGIES, 1.0))
    runs_seconds = sum(10.0 + seed for seed in (0, 1)) * len(STRATEGIES)
    assert "Wall time of this invocation: 3 s" in report
    assert f"the runs' own wall time sums to {runs_seconds:.0f} s over {2 * len(STRATEGIES)} runs" \
        in report
    assert "Total wall time" not in report


@pytest.mark.parametrize(("p", "fragile"), [(0.005, False), (0.0101, True), (0.046, True),
                                            (0.058, True), (0.099, True), (0.1, False),
                                            (0.3, False), (float("nan"), False)])
def test_verdicts_with_p_between_a_hundredth_and_a_tenth_are_fragile(p, fragile):
    from balancer.study._report import is_fragile

    assert is_fragile(p) is fragile


def test_the_opening_marks_a_fragile_verdict_and_says_what_fragile_means(tmp_path):
    import pandas as pd

    from balancer.study._report import verdict_lines

    means = pd.DataFrame({"accuracy": [0.80, 0.85, 0.90]}, index=["plain", "a", "b"])
    paired = pd.DataFrame({"strategy": ["a", "b"], "metric": ["accuracy"] * 2,
                           "difference": [0.05, 0.10], "ci_low": [0.01, 0.02],
                           "ci_high": [0.09, 0.18], "p_value": [0.003, 0.04],
                           "better": [True, True], "significant": [True, True]})
    lines = verdict_lines(means, paired, reference="plain", headline={"accuracy": True},
                          words={}, seeds=5, min_seeds=2)
    text = "\n".join(lines)
    assert "0.01 < p < 0.1 is marked *fragile*" in text
    best = next(line for line in lines if line.startswith("- **accuracy**"))
    assert "`b` has the highest mean" in best and "(*fragile*)" in best
    paired.loc[1, "p_value"] = 0.002
    best = next(line for line in verdict_lines(means, paired, reference="plain",
                                               headline={"accuracy": True}, words={}, seeds=5,
                                               min_seeds=2) if line.startswith("- **accuracy**"))
    assert "fragile" not in best
