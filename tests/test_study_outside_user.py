"""What a user meets running ``balancer study`` on data it has never seen (issue 22): every
mistake a user can make with a file or a flag is a usage error naming the flag, the value and
the fix, before any training; never a traceback or an OS error without the flag."""

import numpy as np
import pandas as pd
import pytest

import balancer.study._train
from balancer.__main__ import main


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the input was checked")
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", refuse)
    monkeypatch.setattr(balancer.study._train, "train_run", refuse, raising=False)


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = ["no"] * 150 + ["yes"] * 50
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def _cli_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--no-progress", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("content", [None, "not json {", "[1, 2]", '{"settings": {}}'])
def test_a_tuning_record_that_is_missing_or_not_one_names_tuned(table, tmp_path, content,
                                                               capsys, no_training):
    record = tmp_path / "tuned.json"
    if content is not None:
        record.write_text(content)
    err = _cli_error(["--table", str(table), "--label-col", "y", "--epochs", "1", "--seeds", "0",
                      "--tuned", str(record), "--out", str(tmp_path / "run")], capsys)
    assert err.startswith(f"balancer study: error: --tuned {record}"), err
    assert "tuned.json of a --tune run" in err, err
    assert "Errno" not in err and "Expecting" not in err and "KeyError" not in err, err


def test_a_csv_passed_as_data_points_to_table(table, tmp_path, capsys, no_training):
    err = _cli_error(["--data", str(table), "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: --data "), err
    assert "not a zip archive" in err and "--table FILE --label-col" in err, err
    assert "Python objects" not in err, err


def test_a_mistyped_flag_is_an_error_of_the_study_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--epohcs", "3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("balancer study: error: unrecognized arguments: --epohcs 3; did you "
                          "mean --epochs (for --epohcs)?"), err
    assert "'balancer study --help'" in err, err


def test_the_flags_printed_after_tune_are_accepted_by_the_study(table, tmp_path, monkeypatch,
                                                               capsys):
    """A tuning run at a short budget can choose a phase as long as the whole run (its grid is
    capped at --epochs, as the default is); the flags it prints must be ones the study accepts,
    and the phase it cannot print as a flag is named with the route that applies it."""
    import balancer.study._tune as tune_module

    def fake_tune(config, data, *, command="", run=None):
        return {"dataset": None, "budget": config.given_budget(),
                "settings": {"focal_gamma": 1.0, "drw_epochs": config.epochs, "crt_epochs": 1}}

    def fake_write(record, out):
        out.mkdir(parents=True, exist_ok=True)
        (out / "tune.md").write_text("# tuning\n")
        return {"tuned.json": out / "tuned.json", "tune.md": out / "tune.md"}

    monkeypatch.setattr(tune_module, "tune", fake_tune)
    monkeypatch.setattr(tune_module, "write_tuning", fake_write)
    common = ["--table", str(table), "--label-col", "y", "--epochs", "2", "--seeds", "0"]
    assert main(["study", "--no-progress", "--tune", *common, "--out",
                 str(tmp_path / "tune")]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("Tuning record:"))
    flags = line.split(", pass ", 1)[1].split(", or --tuned", 1)[0].split(" (", 1)[0].split()
    assert flags == ["--focal-gamma", "1.0", "--crt-epochs", "1"], line
    assert "--drw-epochs 2" in line and "whole run" in line and "--tuned" in line, line

    def stop(*args, **kwargs):  # the flags passed every check: training would start here
        raise RuntimeError("training reached")
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", stop)
    monkeypatch.setattr(balancer.study._train, "train_run", stop, raising=False)
    with pytest.raises(RuntimeError, match="training reached"):
        main(["study", "--no-progress", *common, *flags, "--out", str(tmp_path / "run")])


def test_an_npz_with_more_class_names_than_classes_is_refused(tmp_path, capsys, no_training):
    """label_names naming a class that y never holds is a mislabelled file (or a class with no
    sample at all): refused, naming the names left over, never silently cut to fit."""
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.normal(size=(120, 4)), y=np.repeat([0, 1], [90, 30]),
             label_names=np.array(["healthy", "sick", "unknown"]))
    err = _cli_error(["--data", str(path), "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: --data "), err
    assert "label_names holds 3 name(s) but y has classes 0..1" in err, err
    assert "['unknown']" in err, err


@pytest.mark.parametrize("majority", [1, 0])
def test_a_majority_positive_class_is_said(tmp_path, capsys, majority):
    """With two classes, AUPRC and sensitivity at 95% specificity score class 1 by default; when
    class 1 is the common one (a file coding 'healthy' as 1) those numbers describe the easy
    class, so the console and report.md say so and name the flag that scores the rarer one."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.where(np.arange(300) % 5 == 0, 1 - majority, majority)
    path = tmp_path / "d.npz"
    np.savez(path, X=X + y[:, None], y=y, label_names=np.array(["neg", "pos"]))
    out = tmp_path / "run"
    assert main(["study", "--no-progress", "--data", str(path), "--epochs", "1", "--seeds", "0",
                 "--strategies", "plain", "--no-posthoc", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    report = (out / "report.md").read_text()
    said = "the majority class of the train split"
    if majority == 1:
        assert f"'pos' (class 1) is {said}" in err and "--positive-class neg" in err, err
        assert f"is {said}" in report and "`--positive-class neg`" in report
    else:
        assert said not in err and said not in report


def test_labels_dropped_by_min_positives_are_named_in_the_report(tmp_path, capsys):
    """The console notice scrolls away; report.md is what a reader keeps, so it names the
    labels --min-positives dropped (the data line), not only the labels that were kept."""
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"f": rng.standard_normal(n), "g": rng.standard_normal(n),
                          "common": np.arange(n) % 2, "mid": (np.arange(n) // 2) % 3 == 0,
                          "rare_one": np.arange(n) == 5})
    frame[["mid", "rare_one"]] = frame[["mid", "rare_one"]].astype(int)
    frame.to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "run"
    assert main(["study", "--no-progress", "--multilabel", "--table", str(tmp_path / "m.csv"),
                 "--label-cols", "common,mid,rare_one", "--min-positives", "2",
                 "--strategies", "plain", "--seeds", "0", "--epochs", "1",
                 "--out", str(out)]) == 0
    assert "dropped 1 label(s)" in capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "--min-positives 2 dropped 1 label(s)" in report and "['rare_one']" in report


@pytest.fixture
def split_table(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = ["no"] * 150 + ["yes"] * 50
    frame["split"] = np.array(["train"] * 7 + ["val"] + ["test"] * 2)[np.arange(200) % 10]
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_split_col_that_is_not_a_column_is_refused(split_table, tmp_path, capsys, no_training):
    """A mistyped --split-col was ignored: the table was split automatically and its real
    'split' column became a one-hot feature."""
    err = _cli_error(["--table", str(split_table), "--label-col", "y", "--split-col", "fold",
                      "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: --split-col 'fold' is not a column of "), err
    assert "'split'" in err and "leave --split-col out" in err, err


@pytest.mark.parametrize("multilabel", [False, True])
def test_split_fractions_that_a_full_split_column_overrides_are_refused(
        split_table, tmp_path, capsys, no_training, multilabel):
    """--split sets the automatic split (and the val share carved from train); a file whose
    own split already has train, val and test rows uses neither, so --split was silently
    ignored."""
    if multilabel:
        frame = pd.read_csv(split_table)
        frame["z"] = (np.arange(200) % 3 == 0).astype(int)
        frame["y"] = (frame["y"] == "yes").astype(int)
        frame.to_csv(split_table, index=False)
    argv = (["--multilabel", "--label-cols", "y,z"] if multilabel else ["--label-col", "y"])
    err = _cli_error(["--table", str(split_table), *argv, "--split", "0.5,0.25,0.25",
                      "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: --split 0.5,0.25,0.25 "), err
    assert "split column 'split'" in err and "remove --split" in err, err


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity"])
def test_an_infinite_table_cell_is_refused_before_training(tmp_path, capsys, no_training, cell):
    """pandas reads 'inf' as a float; it reached standardisation (numpy warnings, NaN features)
    and training crashed with a traceback."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)).round(3).astype(str), columns=["a", "b", "c"])
    frame["y"] = ["no"] * 150 + ["yes"] * 50
    frame.loc[5, "b"] = cell
    frame.to_csv(tmp_path / "t.csv", index=False)
    for impute in ([], ["--impute", "median"]):
        err = _cli_error(["--table", str(tmp_path / "t.csv"), "--label-col", "y", *impute,
                          "--out", str(tmp_path / "run")], capsys)
        assert err.startswith("balancer study: error: "), err
        assert "['b']" in err and "infinite" in err and "row 5" in err, err
        assert "RuntimeWarning" not in err, err


def test_a_class_too_small_for_the_automatic_split_is_named_first(tmp_path, capsys,
                                                                   no_training):
    """A class of 2 samples cannot be in train, val and test; the message led with "the val
    split has class(es) ['c'] that are absent from the train split", a symptom of the split
    drawn here, and gave the cause last."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = ["a"] * 150 + ["b"] * 48 + ["rare"] * 2
    frame.to_csv(tmp_path / "t.csv", index=False)
    err = _cli_error(["--table", str(tmp_path / "t.csv"), "--label-col", "y", "--batch-size",
                      "16", "--out", str(tmp_path / "run")], capsys)
    first = err.splitlines()[0]
    assert first.startswith("balancer study: error: --table ") and "t.csv" in first, err
    assert "class(es) ['rare'] have fewer than 3 samples (2)" in first, err
    assert "absent from the train split" not in err, err
    assert "--split-col" in err, err


@pytest.mark.parametrize("sep,name", [(";", "';'"), ("\t", "tab")])
def test_a_table_separated_by_another_character_says_so(tmp_path, capsys, no_training, sep,
                                                        name):
    """A ';'-separated export (usual where the decimal mark is a comma) read as one column
    'a;b;c;y': the message listed that column and left the user to guess why."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = ["no"] * 150 + ["yes"] * 50
    frame.to_csv(tmp_path / "t.csv", index=False, sep=sep)
    err = _cli_error(["--table", str(tmp_path / "t.csv"), "--label-col", "y",
                      "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: --table "), err
    assert f"separated by {name}" in err and "commas" in err, err


def _id_table(path, ids):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = ["no"] * 150 + ["yes"] * 50
    frame["record"] = ids
    frame.to_csv(path, index=False)


def test_a_text_column_with_a_value_per_row_is_refused(tmp_path, capsys, no_training):
    """One-hot encoding a text id ('r0', 'r1', ...) made 200 features, each seen in one row,
    without a word."""
    _id_table(tmp_path / "t.csv", [f"r{i}" for i in range(200)])
    err = _cli_error(["--table", str(tmp_path / "t.csv"), "--label-col", "y",
                      "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: "), err
    assert "['record']" in err and "--group-col record" in err, err


def test_an_integer_id_column_used_as_a_feature_is_named(tmp_path, capsys, monkeypatch):
    """A row number or record id (0, 1, 2, ...) is a numeric feature like any other, and in a
    file sorted by class it predicts the class; the notice names it and the fixes."""
    _id_table(tmp_path / "t.csv", np.arange(1000, 1200))

    def stop(*args, **kwargs):
        raise RuntimeError("training reached")
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", stop)
    with pytest.raises(RuntimeError, match="training reached"):
        main(["study", "--no-progress", "--table", str(tmp_path / "t.csv"), "--label-col", "y",
              "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert "'record'" in err and "a distinct integer per row" in err, err
    assert "--group-col record" in err, err


def test_a_label_column_of_fractional_numbers_is_refused(tmp_path, capsys, no_training):
    """A regression target passed as --label-col made every value a class of one sample; the
    error then listed 300 class names. Fractional labels are refused, naming a row."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame["y"] = np.where(np.arange(300) % 4 == 0, 1.0, 0.0)
    frame.loc[7, "y"] = 0.5
    frame.to_csv(tmp_path / "t.csv", index=False)
    err = _cli_error(["--table", str(tmp_path / "t.csv"), "--label-col", "y",
                      "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: "), err
    assert "--label-col 'y' holds fractional numbers" in err and "row 7" in err, err
    assert len(err) < 600, err


def test_the_data_line_says_the_carved_validation_split_once(tmp_path, capsys):
    """The data line read "d.npz (npz table X/y); data='d.npz': no val rows, ...": the notice's
    own prefix repeated the file in the report and the console table's title."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [150, 50])
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.normal(size=(200, 4)) + y[:, None], y=y,
             is_train=np.arange(200) % 5 != 0)
    out = tmp_path / "run"
    assert main(["study", "--no-progress", "--data", str(path), "--epochs", "1", "--seeds", "0",
                 "--strategies", "plain", "--no-posthoc", "--out", str(out)]) == 0
    title = next(line for line in capsys.readouterr().out.splitlines()
                 if line.startswith("Test metrics on"))
    data_line = next(line for line in (out / "report.md").read_text().splitlines()
                     if line.startswith("Data: "))
    for line in (title, data_line):
        assert "(npz table X/y); no val rows, so " in line and line.count("d.npz") == 1, line


def test_a_multilabel_npz_with_the_wrong_number_of_label_names_names_its_array(
        tmp_path, capsys, no_training):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0.5, X[:, 2] > 1], 1).astype(int)
    np.savez(tmp_path / "m.npz", X=X, Y=Y, label_names=np.array(["a", "b", "c", "d"]))
    err = _cli_error(["--multilabel", "--data", str(tmp_path / "m.npz"),
                      "--out", str(tmp_path / "run")], capsys)
    assert err.startswith("balancer study: error: --data "), err
    assert "'label_names' holds 4 name(s) but Y has 3 columns" in err, err


def test_groups_across_an_npz_is_train_mask_name_the_mask(tmp_path, capsys, no_training):
    """The refusal told an npz user to "leave out the split column", which an npz has not."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [150, 50])
    np.savez(tmp_path / "g.npz", X=rng.normal(size=(200, 4)), y=y,
             is_train=np.arange(200) % 4 != 0, groups=np.arange(200) % 30)
    err = _cli_error(["--data", str(tmp_path / "g.npz"), "--out", str(tmp_path / "run")],
                     capsys)
    assert "appear in more than one split" in err and "is_train" in err, err


@pytest.mark.parametrize("column", ["patient_id", "PatientID", "subject"])
def test_a_column_named_as_an_id_used_as_a_feature_is_named(tmp_path, capsys, monkeypatch,
                                                            column):
    """A patient id with several rows per patient is not distinct per row, yet as a feature it
    lets a model recognise patients that the automatic split (without --group-col) put in
    train and test alike; the notice names it and --group-col."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = ["no"] * 150 + ["yes"] * 50
    frame[column] = np.arange(200) // 4
    frame.to_csv(tmp_path / "t.csv", index=False)

    def stop(*args, **kwargs):
        raise RuntimeError("training reached")
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", stop)
    with pytest.raises(RuntimeError, match="training reached"):
        main(["study", "--no-progress", "--table", str(tmp_path / "t.csv"), "--label-col", "y",
              "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert f"'{column}'" in err and f"--group-col {column}" in err, err
    with pytest.raises(RuntimeError, match="training reached"):
        main(["study", "--no-progress", "--table", str(tmp_path / "t.csv"), "--label-col", "y",
              "--group-col", column, "--out", str(tmp_path / "run2")])
    assert f"'{column}'" not in capsys.readouterr().err
