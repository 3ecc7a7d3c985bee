"""--tuned FILE matches a tuning record to the study's data by the data's identity (the file's
content hash, the label column, the classes and the task kind), not by its path: a moved or
renamed copy of the data still matches, other data is refused naming both."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balancer.__main__ import main
from balancer.study import StudyConfig, prepare_data
from balancer.study._cli import _check_tuned_data
from balancer.study._config import TUNED_DIR

COMMON = ["--quick", "--strategies", "focal", "--no-posthoc", "--no-progress"]


def _table(path: Path, shift: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    y = (rng.random(240) < 0.25).astype(int)
    z = (rng.random(240) < 0.4).astype(int)
    pd.DataFrame({"a": rng.standard_normal(240) + shift * y, "b": rng.standard_normal(240),
                  "y": y, "z": z}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A table and the tuned.json of a --tune run on it."""
    folder = tmp_path_factory.mktemp("tuned")
    table = _table(folder / "t.csv")
    assert main(["study", "--tune", *COMMON, "--table", str(table), "--label-col", "y",
                 "--out", str(folder / "tune")]) == 0
    return table, folder / "tune" / "tuned.json"


def _check(record: Path, table: Path, label_col: str = "y") -> None:
    config = StudyConfig(table=str(table), label_col=label_col, quick=True, tuned=False)
    _check_tuned_data(str(record), config, prepare_data(config))


def test_a_tuning_record_names_its_data_by_content(tuned):
    table, record = tuned
    identity = json.loads(record.read_text())["data"]
    assert identity == {"task": "single",
                        "sha256": hashlib.sha256(table.read_bytes()).hexdigest(),
                        "label_col": "y", "classes": ["0", "1"]}


def test_a_moved_and_renamed_copy_of_the_data_still_matches(tuned, tmp_path):
    table, record = tuned
    copy = tmp_path / "elsewhere" / "renamed.csv"
    copy.parent.mkdir()
    shutil.copy(table, copy)
    _check(record, copy)  # the source string names another path, the content is the same


def test_other_data_is_refused_naming_both(tuned, tmp_path, capsys, no_training):
    table, record = tuned
    other = _table(tmp_path / "t.csv", shift=2.0)  # the same name, other content
    with pytest.raises(ValueError, match=r"was tuned on other data: .*t\.csv.*sha256 '[0-9a-f]{64}'"
                                         r".*but this study's data is .*sha256 '[0-9a-f]{64}'"):
        _check(record, other)
    with pytest.raises(SystemExit):
        main(["study", *COMMON, "--table", str(other), "--label-col", "y", "--tuned",
              str(record), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert f"--tuned {record} was tuned on other data" in err
    assert str(table) in err and str(other) in err


def test_another_label_column_of_the_same_file_is_refused(tuned):
    table, record = tuned
    with pytest.raises(ValueError, match=r"label_col 'y'.*label_col 'z'"):
        _check(record, table, label_col="z")


def test_other_classes_or_another_task_are_refused(tuned, tmp_path):
    table, record = tuned
    saved = json.loads(record.read_text())
    for key, value, shown in (("classes", ["no", "yes"], r"classes \['no', 'yes'\].*"
                                                         r"classes \['0', '1'\]"),
                              ("task", "multi", r"task 'multi'.*task 'single'")):
        edited = tmp_path / f"{key}.json"
        edited.write_text(json.dumps({**saved, "data": {**saved["data"], key: value}}))
        with pytest.raises(ValueError, match=shown):
            _check(edited, table)


def test_shipped_records_without_an_identity_still_match_by_source():
    record = TUNED_DIR / "breastmnist.json"
    assert "data" not in json.loads(record.read_text())  # written before identities
    for name, fits in (("breastmnist", True), ("pneumoniamnist", False)):
        config = StudyConfig(dataset=name, tuned=False)
        if fits:
            _check_tuned_data(str(record), config, prepare_data(config))
        else:
            with pytest.raises(ValueError, match="was tuned on 'shipped breastmnist"):
                _check_tuned_data(str(record), config, prepare_data(config))
