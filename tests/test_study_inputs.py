"""Bad data never reaches training: every defect is reported before the first step, naming the
argument (or split), the value and the fix (issue 12, "never lose a result")."""

import re

import numpy as np
import pandas as pd
import pytest

import balancer.study._train
from balancer.__main__ import main
from balancer.study import StudyConfig, load_study_data


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the input was checked")
    monkeypatch.setattr(balancer.study._train, "train_and_evaluate", refuse)
    monkeypatch.setattr(balancer.study, "train_and_evaluate", refuse, raising=False)
    monkeypatch.setattr(balancer.study._train, "train_run", refuse, raising=False)


def _arrays(train=(0, 1, 0, 1), val=(0, 1), test=(0, 1), label_dtype=np.int64, shape=(28, 28)):
    arrays = {}
    for split, labels in (("train", train), ("val", val), ("test", test)):
        arrays[f"{split}_images"] = np.zeros((len(labels), *shape), np.uint8)
        arrays[f"{split}_labels"] = np.asarray(labels, label_dtype)[:, None]
    return arrays


def _cli_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--no-progress", *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ----------------------------------------------------------------------------- npz files
@pytest.mark.parametrize("content", [b"this is a text file, not an archive\n", b"PK\x03\x04trunc"])
def test_npz_that_is_not_an_archive_names_data(tmp_path, content, capsys, no_training):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"data='.*bad\.npz' is not a readable \.npz file"):
        load_study_data(data=path)
    err = _cli_error(["--data", str(path)], capsys)
    assert err.startswith("balancer study: error: --data ") and "Traceback" not in err


def test_truncated_npz_names_data(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez(path, **_arrays())
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"data='.*cut\.npz' is not a readable \.npz file"):
        load_study_data(data=path)


def test_npz_with_object_array_is_never_unpickled(tmp_path):
    arrays = _arrays()
    arrays["train_labels"] = np.array([0, 1, 0, 1], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"holds Python objects, which are never unpickled"):
        load_study_data(data=path)


def test_npz_nan_label_names_the_split(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(val=(0.0, np.nan, 1.0), label_dtype=np.float64))
    with pytest.raises(ValueError, match=r"val_labels: 1 label\(s\) are NaN or infinite \(at "
                                         r"index 1\)"):
        load_study_data(data=path)


def test_npz_negative_label_names_the_value(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(test=(0, -1, 1)))
    with pytest.raises(ValueError, match=r"test_labels: 1 label\(s\) are negative \(e\.g\. -1 at "
                                         r"index 1\).*instead of marking them -1"):
        load_study_data(data=path)


def test_npz_fractional_labels_are_not_truncated(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(train=(0.0, 1.0, 0.7, 1.7), label_dtype=np.float64))
    with pytest.raises(ValueError, match=r"train_labels: 2 label\(s\) are not whole numbers "
                                         r"\(e\.g\. 0\.7 at index 2\)"):
        load_study_data(data=path)
    # Whole floats are fine: 0.0 and 1.0 are the classes 0 and 1.
    np.savez(path, **_arrays(label_dtype=np.float64))
    assert load_study_data(data=path).class_names == ("0", "1")


def test_npz_empty_train_split(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(train=()))
    with pytest.raises(ValueError, match=r"the train split is empty"):
        load_study_data(data=path)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_npz_split_with_a_single_class(tmp_path, split, no_training, capsys):
    labels = {"train": (0, 1, 0, 1), "val": (0, 1), "test": (0, 1), split: (0, 0, 0)}
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(**labels))
    with pytest.raises(ValueError, match=rf"the {split} split holds a single class \('0'\)"):
        load_study_data(data=path)
    assert "holds a single class" in _cli_error(["--data", str(path)], capsys)


def test_npz_rgb_train_with_grey_test_is_refused(tmp_path):
    arrays = _arrays()
    arrays["train_images"] = np.zeros((4, 28, 28, 3), np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"the splits' images differ in \(channels, height, "
                                         r"width\): \{'train': \(3, 28, 28\), 'val': \(1, 28, 28\)"):
        load_study_data(data=path)


# ----------------------------------------------------------------------------- CSV manifests
def _png(path, pixels, mode=None):
    from PIL import Image

    Image.fromarray(pixels, mode=mode).save(path)


def _manifest(tmp_path, paths):
    rows = []
    for k, value in enumerate(paths):
        rows.append({"path": value, "label": k % 2, "split": ("train", "val", "test")[k % 3]})
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def test_csv_reports_every_unreadable_row_at_once(tmp_path):
    good = []
    for k in range(9):
        _png(tmp_path / f"g{k}.png", np.zeros((28, 28), np.uint8))
        good.append(f"g{k}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _png(tmp_path / "cut.png", np.arange(28 * 28, dtype=np.uint8).reshape(28, 28))
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    paths = [*good, "gone1.png", "gone2.png", "gone3.png", "broken.png", "cut.png", None]
    csv = _manifest(tmp_path, paths)
    with pytest.raises(ValueError) as error:
        load_study_data(csv=csv)
    message = str(error.value)
    assert "6 of 15 rows have no readable image" in message
    for expected in ("row 9: 'gone1.png' does not exist", "row 10: 'gone2.png'",
                     "row 11: 'gone3.png'", "row 12: 'broken.png' is not a readable image",
                     "row 13: 'cut.png' is not a readable image"):
        assert expected in message
    assert "; ..." in message  # the sixth (the empty cell) is counted, not listed
    assert "expected str, bytes or os.PathLike" not in message


def test_csv_empty_path_cell_is_named(tmp_path):
    for k in range(6):
        _png(tmp_path / f"g{k}.png", np.zeros((28, 28), np.uint8))
    csv = _manifest(tmp_path, [f"g{k}.png" for k in range(6)] + [None])
    with pytest.raises(ValueError, match=r"1 of 7 rows have no readable image: row 6: empty "
                                         r"'path' cell"):
        load_study_data(csv=csv)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    from balancer.study._data import _read_image

    gradient = np.tile(np.linspace(0, 4095, 28).round().astype(np.uint16), (28, 1))
    _png(tmp_path / "xray.png", gradient)
    from PIL import Image

    assert Image.open(tmp_path / "xray.png").mode.startswith("I")
    pixels = _read_image(tmp_path / "xray.png", 28)
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255
    assert np.mean(pixels == 255) < 0.05  # convert("L") made 94% of it 255
    assert (np.diff(pixels[0].astype(int)) >= 0).all()  # order kept
    np.testing.assert_allclose(pixels[0], gradient[0] / 4095 * 255, atol=0.51)


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("option, value", [
    ("--lr", "inf"), ("--lr", "nan"), ("--weight-decay", "nan"),
    ("--finetune-lr-scale", "nan"), ("--finetune-lr-scale", "inf"), ("--focal-gamma", "inf"),
])
def test_non_finite_settings_are_refused(option, value, capsys, no_training, tmp_path):
    err = _cli_error([option, value, "--out", str(tmp_path / "r")], capsys)
    assert err.startswith(f"balancer study: error: argument {option}: expected a finite number, "
                          f"but got '{value}'"), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["lr", "weight_decay", "finetune_lr_scale", "la_tau"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_settings_are_refused_by_the_config(name, value):
    from balancer.study import StudyConfig

    with pytest.raises(ValueError, match=rf"{name} should be a finite number, but got "
                                         rf"{name}={value}"):
        StudyConfig(**{name: value})


@pytest.mark.parametrize("argv, flag, needs", [
    (["--image-col", "file"], "--image-col", "--csv"),
    (["--image-size", "32"], "--image-size", "--csv"),
    (["--group-col", "patient"], "--group-col", "--csv or --table"),
    (["--dataset", "breastmnist", "--label-col", "y"], "--label-col", "--csv or --table"),
    (["--table", "t.csv", "--image-col", "file"], "--image-col", "--csv"),
])
def test_options_that_do_not_apply_are_refused(argv, flag, needs, capsys, no_training):
    err = _cli_error(argv, capsys)
    assert err.startswith(f"balancer study: error: {flag} applies only with {needs}"), err


def test_usage_error_prints_the_useful_line_first(capsys, no_training):
    err = _cli_error(["--epochs", "0"], capsys)
    lines = err.splitlines()
    assert lines[0] == ("balancer study: error: --epochs should be an integer >= 1, but got "
                        "--epochs 0; pass the number of epochs to train, e.g. --epochs 12")
    assert len(lines) <= 2 and "usage:" not in err
    err = _cli_error(["--no-such-option"], capsys)
    assert err.splitlines()[0] == "balancer study: error: unrecognized arguments: --no-such-option"


def test_progress_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch):
    from balancer.__main__ import build_parser
    from balancer.study._cli import _config

    class Pipe:
        def isatty(self):
            return False

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Pipe())
    assert _config(build_parser().parse_args(["study"])).progress is False
    monkeypatch.setattr("sys.stderr", Terminal())
    assert _config(build_parser().parse_args(["study"])).progress is True
    assert _config(build_parser().parse_args(["study", "--no-progress"])).progress is False


def test_study_settings_reach_the_config():
    from balancer.__main__ import build_parser
    from balancer.study._cli import _config

    args = build_parser().parse_args([
        "study", "--focal-gamma", "1.5", "--la-tau", "0.5", "--effective-beta", "0.9",
        "--drw-beta", "0.95", "--finetune-epochs", "2", "--finetune-lr-scale", "0.3"])
    config = _config(args)
    assert (config.focal_gamma, config.la_tau, config.effective_beta, config.drw_beta,
            config.finetune_epochs, config.finetune_lr_scale) == (1.5, 0.5, 0.9, 0.95, 2, 0.3)


def test_help_is_quick_because_imports_are_lazy():
    """``balancer study --help`` imports nothing beyond what ``import balancer`` does: not
    scikit-learn, matplotlib or the study's training code."""
    import subprocess
    import sys

    code = ("import sys; import balancer; before = set(sys.modules)\n"
            "from balancer.__main__ import main\n"
            "try:\n    main(['study', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('sklearn', 'matplotlib', 'scipy') or m in ('balancer.study._train', "
            "'balancer.study._report'))\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120, check=True)
    assert re.search(r"HEAVY \[\]", completed.stderr), completed.stderr


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize(("strategy", "flag", "same_as"), [
    ("balanced+finetune", "--finetune-epochs", "balanced"),
    ("ldam-drw", "--drw-epochs", "LDAM without deferred re-weighting"),
    ("drs", "--drs-epochs", "plain"),
    ("crt", "--crt-epochs", "plain"),
])
def test_a_phased_strategy_with_a_zero_phase_is_refused(strategy, flag, same_as, capsys,
                                                        no_training):
    """0 epochs of its phase would make the row another strategy under its own name."""
    err = _cli_error(["--quick", "--strategies", f"plain,{strategy}", flag, "0"], capsys)
    assert err.splitlines()[0] == (
        f"balancer study: error: {flag} 0 leaves {strategy} without its phase, so it would "
        f"train as {same_as}; pass {flag} 1 or more, or leave {strategy} out of the strategies")
    field = flag.removeprefix("--").replace("-", "_")
    # Without that strategy, a zero phase is fine.
    assert StudyConfig(strategies=("plain",), **{field: 0}).to_dict()[field] == 0


def test_more_jobs_than_cpus_is_refused_before_any_process_starts(capsys, no_training,
                                                                  monkeypatch):
    import balancer.study._config as study_config

    monkeypatch.setattr(study_config, "_usable_cpus", lambda: 4)
    err = _cli_error(["--jobs", "1000"], capsys)
    assert err.splitlines()[0] == (
        "balancer study: error: --jobs 1000 would start 1000 training processes on a machine "
        "with 4 usable CPU(s); pass --jobs 4 or fewer (each process trains one run at a time)")
    assert StudyConfig(jobs=4).jobs == 4
    monkeypatch.setattr(study_config, "_usable_cpus", lambda: 1)
    assert StudyConfig(jobs=2).jobs == 2  # two processes are always allowed
    with pytest.raises(ValueError, match="jobs=3 would start 3 training processes"):
        StudyConfig(jobs=3)


def test_cli_errors_name_the_flag_not_the_config_field():
    """Only a field a flag sets is renamed, and only where it stands as a name."""
    from balancer.__main__ import build_parser
    from balancer.study._cli import as_flags

    parser = build_parser()
    study = next(a for a in parser._actions if a.dest == "command").choices["study"]
    assert as_flags("batch_size should be an integer >= 1, but got batch_size=0; e.g. 64",
                    study) == ("--batch-size should be an integer >= 1, but got --batch-size "
                               "0; e.g. 64")
    assert as_flags("samples=5 is too few", study) == "--synthetic-samples 5 is too few"
    untouched = ("num_samples=3 and state['epoch']=2 and x.epochs=1 and my-seeds=1 and "
                 "unknown_field=1")
    assert as_flags(untouched, study) == untouched


def test_a_mistyped_flag_suggests_the_closest_one(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--epohcs", "3"])
    err = capsys.readouterr().err
    assert "did you mean --epochs (for --epohcs)?" in err


def test_help_text_states_the_defaults(capsys):
    """The description names what the default --select keeps, and every "(default: X)" the
    help states in words is the option's default."""
    from balancer.__main__ import build_parser
    from balancer.study._cli import _SELECT_TEXT

    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    study = build_parser()._subparsers._group_actions[0].choices["study"]
    select = next(a for a in study._actions if a.dest == "select")
    assert f"keep each run's {_SELECT_TEXT[select.default]} (--select)" in text
    assert "select on validation" not in text
    for action in study._actions:
        stated = re.search(r"\(default: ([\w.\-]+)\)", action.help or "")
        if stated and action.default is not None:
            words = {True: ("True", "on"), False: ("False", "off")}
            assert stated.group(1) in words.get(action.default, (str(action.default),)), \
                action.dest


@pytest.mark.parametrize(("strategy", "flag"), [
    ("balanced+finetune", "--finetune-epochs"), ("ldam-drw", "--drw-epochs"),
    ("drs", "--drs-epochs"), ("crt", "--crt-epochs"),
])
def test_a_phase_that_covers_the_whole_run_is_refused_like_zero(strategy, flag, capsys,
                                                                no_training):
    """--epochs 3 --drs-epochs 3 never changes phase: drs would train as balanced under its
    own name, as silently as a phase of 0 would (which is refused)."""
    err = _cli_error(["--quick", "--strategies", f"plain,{strategy}", "--epochs", "3", flag,
                      "3"], capsys)
    assert err.splitlines()[0].startswith(
        f"balancer study: error: {flag} 3 equals --epochs 3: {strategy}'s phase would cover "
        f"the whole run")
    assert f"pass {flag} below 3" in err


def test_a_multilabel_finetune_phase_that_covers_the_whole_run_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--multilabel", "--quick", "--epochs", "2", "--finetune-epochs", "2",
              "--out", "/nonexistent/never-written"])
    assert "--finetune-epochs 2 equals --epochs 2" in capsys.readouterr().err


def test_the_report_names_rows_whose_capped_phase_covers_the_whole_run():
    """--quick (2 epochs) caps drs's and crt's default phase of 3 at 2: the report says those
    rows never change phase, rather than showing them as their strategy silently."""
    from balancer.study._report import _whole_run_lines

    config = StudyConfig(quick=True, epochs=2, finetune_epochs=1, drw_epochs=1, progress=False,
                         dataset="breastmnist")
    text = " ".join(_whole_run_lines(config))
    assert "`drs` (`drs_epochs` = 2)" in text and "`crt` (`crt_epochs` = 2)" in text
    assert "balanced+finetune" not in text
    assert _whole_run_lines(StudyConfig(epochs=12, progress=False, dataset="breastmnist")) == []
