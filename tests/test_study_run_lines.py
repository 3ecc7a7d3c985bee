"""Where no progress bar shows (stderr not a terminal), the study prints one line per finished
run, unless --no-progress."""

from __future__ import annotations

import re

import pytest

from balancer.__main__ import main

TINY = ["study", "--dataset", "breastmnist", "--quick", "--strategies", "plain,focal",
        "--no-posthoc", "--train-limit", "64", "--bootstrap", "100"]


@pytest.mark.parametrize("quiet", [False, True])
def test_a_line_per_finished_run_when_stderr_is_not_a_terminal(quiet, tmp_path, capsys):
    argv = [*TINY, "--out", str(tmp_path / "o"), *(["--no-progress"] if quiet else [])]
    assert main(argv) == 0  # capsys: stderr is not a terminal
    lines = re.findall(r"^finished (\S+) seed (\d+) in [\d.]+ s$", capsys.readouterr().err,
                       flags=re.M)
    assert lines == ([] if quiet else [("plain", "0"), ("focal", "0")])
