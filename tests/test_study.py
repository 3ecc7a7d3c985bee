import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import balancer.study as study
from balancer.__main__ import main
from balancer.study import (
    OUTPUT_FILES,
    STRATEGIES,
    StudyConfig,
    classification_metrics,
    expected_calibration_error,
    load_study_data,
    prepare_data,
    run_study,
)
from balancer.study._model import SmallCNN
from balancer.study._strategies import make_batch_sampler, seeded_generator, undersample_indices
from balancer.study._study import TIMING_METRICS
from balancer.study._train import augment

QUICK_ARGS = ["--quick", "--no-progress"]


def _no_training(monkeypatch):
    """Make any training attempt fail loudly: errors must come before training starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the input was checked")
    monkeypatch.setattr(study._train, "train_and_evaluate", refuse)


# ----------------------------------------------------------------------------- end to end
def test_cli_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["study", *QUICK_ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Report: {out / 'report.md'}" in printed
    for name in OUTPUT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["strategy", "seed", "split", "metric", "value"]
    # The trained rows in order, then the rows derived on validation after training.
    assert list(dict.fromkeys(results["strategy"])) == [*STRATEGIES, "plain+posthoc",
                                                        "balanced+posthoc"]
    test = results[results["split"] == "test"]
    # RetinaMNIST's grades are ordinal (qwk); five classes: no sensitivity at specificity.
    expected_metrics = {"accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "nll", "ece",
                        "auprc", "qwk", *(f"recall[{c}]" for c in range(5))}
    for _strategy, group in test.groupby("strategy"):
        assert set(group["metric"]) == expected_metrics
    bounded = test[test["metric"] != "nll"]["value"]
    assert bounded.between(0, 1).all() and np.isfinite(test["value"]).all()
    assert (test.loc[test["metric"] == "nll", "value"] > 0).all()

    # Fairness: every strategy took the same number of optimizer steps, epochs * ceil(N / B).
    steps = results[results["metric"] == "steps"]["value"]
    assert steps.nunique() == 1 and steps.iloc[0] == 2 * math.ceil(256 / 64)

    # Balanced accuracy in the CSV is the mean of the per-class recalls in the CSV.
    wide = test.pivot_table(index=["strategy", "seed"], columns="metric", values="value")
    recalls = wide[[f"recall[{c}]" for c in range(5)]].mean(axis=1)
    np.testing.assert_allclose(wide["balanced_accuracy"], recalls, atol=1e-12)

    report = (out / "report.md").read_text()
    assert f"balancer study {' '.join(QUICK_ARGS)} --out {out}" in report
    assert "same number of optimizer steps" in report
    assert "Here: 2 x ceil(256 / 64) = 8 steps per run." in report
    assert "| strategy | accuracy | balanced acc. | macro-F1 | macro AUC | NLL | ECE |" in report
    for name in STRATEGIES:
        assert f"| {name} |" in report
    assert "15 equal-width confidence bins" in report

    config = json.loads((out / "config.json").read_text())
    assert config["command"].startswith("balancer study --quick")
    assert config["config"]["strategies"] == list(STRATEGIES)
    assert config["config"]["epochs"] == 2 and config["config"]["seeds"] == [0]
    assert config["data"]["counts"]["test"] == [174, 46, 92, 68, 20]
    train_counts = config["data"]["counts"]["train"]  # a stratified slice of exactly 256
    assert sum(train_counts) == 256 and train_counts[0] > train_counts[4] >= 2

    import matplotlib.image

    for name in ("recall_by_class.png", "balanced_vs_accuracy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0  # not a blank canvas


def test_same_seed_gives_identical_metrics_and_other_seeds_differ():
    config = StudyConfig(strategies=("oversample-wrs", "balanced+finetune", "undersample"),
                         seeds=(3,), epochs=2, finetune_epochs=1, drw_epochs=1, train_limit=200,
                         select="best",
                         progress=False)
    data = prepare_data(config)
    first = run_study(config, data)
    second = run_study(config, data)
    keep = ~first["metric"].isin(TIMING_METRICS)
    pd.testing.assert_frame_equal(first[keep].reset_index(drop=True),
                                  second[keep].reset_index(drop=True))
    other = run_study(StudyConfig(**{**config.to_dict(), "seeds": (4,)}), data)
    test = (first["split"] == "test").to_numpy()
    assert not np.allclose(first.loc[test, "value"].to_numpy(),
                           other.loc[test, "value"].to_numpy())


def test_csv_manifest_end_to_end(tmp_path, capsys):
    from PIL import Image

    generator = np.random.default_rng(0)
    rows = []
    for split, per_class in (("train", 12), ("val", 3), ("test", 4)):
        for label in ("benign", "malignant"):
            for k in range(per_class):
                name = f"img/{split}_{label}_{k}.png"
                (tmp_path / "img").mkdir(exist_ok=True)
                size = 32 if label == "benign" else 20  # resized to 28 on load
                mode_shape = (size, size) if k % 2 else (size, size, 3)  # grey and colour mixed
                pixels = generator.integers(0, 256, mode_shape, dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / name)
                rows.append({"path": name, "dx": label, "split": split})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)

    data = load_study_data(csv=tmp_path / "manifest.csv", label_col="dx")
    assert data.class_names == ("benign", "malignant")
    assert data.images["train"].shape == (24, 3, 28, 28)
    assert data.counts("test").tolist() == [4, 4]

    out = tmp_path / "run"
    assert main(["study", *QUICK_ARGS, "--csv", str(tmp_path / "manifest.csv"),
                 "--image-col", "path", "--label-col", "dx", "--strategies", "plain,balanced",
                 "--batch-size", "8", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "recall benign" in report and "recall malignant" in report
    assert set(pd.read_csv(out / "results.csv")["strategy"]) == {
        "plain", "balanced", "plain+posthoc", "balanced+posthoc", "plain+threshold"}


def test_csv_without_split_column_is_split_per_class(tmp_path):
    from PIL import Image

    rows = []
    for label, count in (("a", 30), ("b", 10)):
        for k in range(count):
            Image.fromarray(np.full((28, 28), k, np.uint8)).save(tmp_path / f"{label}{k}.png")
            rows.append({"file": f"{label}{k}.png", "y": label})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    data = load_study_data(csv=tmp_path / "m.csv", image_col="file", label_col="y")
    counts = {split: data.counts(split).tolist() for split in ("train", "val", "test")}
    assert counts == {"train": [21, 7], "val": [3, 1], "test": [6, 2]}
    again = load_study_data(csv=tmp_path / "m.csv", image_col="file", label_col="y")
    assert torch.equal(data.images["test"], again.images["test"])


# ----------------------------------------------------------------------------- bad input
def _npz(path, train, val, test):
    arrays = {}
    for split, labels in (("train", train), ("val", val), ("test", test)):
        arrays[f"{split}_images"] = np.zeros((len(labels), 28, 28), np.uint8)
        arrays[f"{split}_labels"] = np.asarray(labels, np.uint8)[:, None]
    np.savez(path, **arrays)
    return path


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown strategy 'smote'.*valid strategies are "
                                         r"plain, weighted, effective, .*hinge"):
        StudyConfig(strategies=("plain", "smote"))


def test_cli_unknown_strategy_exits_before_training(monkeypatch, capsys, tmp_path):
    _no_training(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--strategies", "plain,smote", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "unknown strategy 'smote'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, match", [
    (["--data", "missing.npz"], r"--data 'missing.npz' does not exist; pass the path of a \.npz"),
    (["--csv", "missing.csv"], r"--csv 'missing.csv' does not exist"),
    (["--dataset", "cifar10"], r"--dataset 'cifar10' is not a shipped data set; choose one of"),
    (["--epochs", "0"], r"--epochs should be an integer >= 1, but got --epochs 0"),
    (["--epochs", "3", "--finetune-epochs", "4"], r"--finetune-epochs 4; it must lie in \[0, "
                                                  r"--epochs 3\]"),
    (["--seeds", "1,1"], r"--seeds \[1, 1\] repeats a seed"),
    (["--batch-size", "5000"], r"--batch-size 5000 is larger than the train split \(1080"),
])
def test_cli_bad_input_exits_with_message(argv, match, monkeypatch, capsys):
    _no_training(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--no-progress", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "balancer study: error:" in err
    assert re.search(match, err), err


def test_missing_npz_file():
    with pytest.raises(FileNotFoundError, match=r"data='nope\.npz' does not exist"):
        load_study_data(data="nope.npz")


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((2, 28, 28), np.uint8),
             train_labels=np.array([0, 1]))
    with pytest.raises(KeyError, match=r"lacks the key\(s\) \['val_images', 'val_labels', 'test_images'"):
        load_study_data(data=tmp_path / "bad.npz")


def test_class_absent_from_training(tmp_path):
    path = _npz(tmp_path / "d.npz", [0, 0, 1, 1], [0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match=r"the test split has class\(es\) \['2'\] that are absent "
                                         r"from the train split"):
        load_study_data(data=path)


def test_class_absent_from_test_split(tmp_path):
    path = _npz(tmp_path / "d.npz", [0, 1, 2], [0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match=r"the test split has no sample of class\(es\) \['2'\]"):
        load_study_data(data=path)


def _manifest(tmp_path, rows):
    from PIL import Image

    for row in rows:
        if "path" in row and not (tmp_path / row["path"]).exists() and row.get("make", True):
            Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / row["path"])
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "make"} for r in rows])
    frame.to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def test_csv_missing_column(tmp_path):
    csv = _manifest(tmp_path, [{"path": "a.png", "label": "x", "split": "train"}])
    with pytest.raises(ValueError, match=r"label_col='dx' is not a column of .*m\.csv \(it has "
                                         r"\['path', 'label', 'split'\]\); pass --label-col"):
        load_study_data(csv=csv, label_col="dx")
    with pytest.raises(ValueError, match=r"image_col='file' is not a column"):
        load_study_data(csv=csv, image_col="file")


def test_csv_missing_image(tmp_path):
    rows = [{"path": f"{s}{k}.png", "label": k, "split": s}
            for s in ("train", "val", "test") for k in (0, 1)]
    rows.append({"path": "gone.png", "label": 0, "split": "train", "make": False})
    csv = _manifest(tmp_path, rows)
    with pytest.raises(ValueError, match=r"1 of 7 rows have no readable image: row 6: 'gone\.png' "
                                         r"does not exist"):
        load_study_data(csv=csv)


def test_csv_class_absent_from_training(tmp_path):
    rows = [{"path": f"{s}{k}.png", "label": k, "split": s}
            for s in ("train", "val", "test") for k in ("a", "b")]
    rows.append({"path": "extra.png", "label": "c", "split": "val"})
    csv = _manifest(tmp_path, rows)
    with pytest.raises(ValueError, match=r"the val split has class\(es\) \['c'\] that are absent "
                                         r"from the train split"):
        load_study_data(csv=csv)


def test_csv_bad_split_value(tmp_path):
    csv = _manifest(tmp_path, [{"path": "a.png", "label": 0, "split": "training"},
                               {"path": "b.png", "label": 1, "split": "test"}])
    with pytest.raises(ValueError, match=r"split_col='split' has value\(s\) \['training'\]"):
        load_study_data(csv=csv)


@pytest.mark.parametrize("settings, error, match", [
    ({"select": "max"}, ValueError, r"select should be 'best'.*got select='max'"),
    ({"lr": 0.0}, ValueError, r"lr should be > 0.0, but got lr=0.0"),
    ({"seeds": ()}, ValueError, r"seeds is empty"),
    ({"epochs": 2, "drw_epochs": 3}, ValueError, r"drw_epochs=3; it must lie in \[0, epochs=2\]"),
    ({"strategies": ("plain", "plain")}, ValueError, r"lists a strategy twice"),
    ({"epochs": 2.5}, TypeError, r"epochs should be an integer"),
    ({"epochs": 0}, ValueError, r"epochs should be an integer >= 1, but got epochs=0; pass the "
                                r"number of epochs to train"),
    ({"batch_size": 0}, ValueError, r"batch_size=0; pass samples per batch"),
    ({"width": 0}, ValueError, r"width=0; pass the CNN's channel width"),
    ({"threads": 0}, ValueError, r"threads=0; pass the number of CPU threads"),
    ({"ece_bins": 0}, ValueError, r"ece_bins=0; pass the number of calibration bins"),
    ({"train_limit": 1}, ValueError, r"train_limit=1; keep at least 2 training images"),
    ({"device": "tpu"}, ValueError, r"device should be 'cpu' or 'cuda'.*device='tpu'"),
    ({"dataset": "retinamnist", "data": "x.npz"}, ValueError, r"pass only one of dataset, data, csv and table"),
])
def test_bad_settings(settings, error, match):
    with pytest.raises(error, match=match):
        StudyConfig(**settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_asked_but_absent():
    with pytest.raises(ValueError, match=r"device='cuda' was asked for, but "
                                         r"torch\.cuda\.is_available\(\) is False"):
        StudyConfig(device="cuda")


# ----------------------------------------------------------------------------- pieces
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_sampler_gives_the_same_steps_per_epoch(name):
    labels = np.repeat([0, 1, 2], [70, 20, 7])
    sampler = make_batch_sampler(STRATEGIES[name], labels, batch_size=16, epochs=4,
                                 finetune_epochs=2, seed=0)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == math.ceil(97 / 16)
        assert sum(map(len, batches)) == 97
        assert all(0 <= i < 97 for batch in batches for i in batch)


def test_undersample_keeps_the_minority_count_per_class():
    labels = np.repeat([0, 1, 2], [70, 20, 7])
    kept = undersample_indices(labels, seed=5)
    assert np.bincount(labels[kept]).tolist() == [7, 7, 7]
    assert len(np.unique(kept)) == 21
    assert not np.array_equal(kept, undersample_indices(labels, seed=6))


def test_balanced_finetune_switches_to_true_frequencies():
    labels = np.repeat([0, 1], [90, 10])
    sampler = make_batch_sampler(STRATEGIES["balanced+finetune"], labels, batch_size=20,
                                 epochs=3, finetune_epochs=1, seed=0)
    drawn = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        drawn.append(np.bincount(labels[np.concatenate(list(sampler))], minlength=2).tolist())
    assert drawn == [[50, 50], [50, 50], [90, 10]]


def test_model_init_is_a_function_of_the_generator():
    a = SmallCNN(3, 5, generator=seeded_generator(0, 1))
    b = SmallCNN(3, 5, generator=seeded_generator(0, 1))
    c = SmallCNN(3, 5, generator=seeded_generator(1, 1))
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(),
                                  c.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb)
        if name.endswith("weight") and pa.dim() > 1:
            assert not torch.equal(pa, pc), name
    assert SmallCNN(1, 2, generator=seeded_generator(0)).forward(torch.zeros(4, 1, 28, 28)).shape \
        == (4, 2)


def test_augment_translates_and_flips():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    out = augment(images, torch.Generator().manual_seed(0), shift=1)
    again = augment(images, torch.Generator().manual_seed(0), shift=1)
    torch.testing.assert_close(out, again)
    for k in range(2):
        padded = [torch.nn.functional.pad(img, (1, 1, 1, 1)) for img in
                  (images[k], images[k].flip(2))]
        crops = [p[:, dy: dy + 6, dx: dx + 6] for p in padded for dy in range(3)
                 for dx in range(3)]
        assert any(torch.equal(out[k], crop) for crop in crops)


def _ece_by_loop(probs, labels, bins):
    total = 0.0
    confidence, predicted = probs.max(1), probs.argmax(1)
    for m in range(bins):
        low, high = m / bins, (m + 1) / bins
        inside = [(c > low or (m == 0 and c == 0)) and c <= high for c in confidence]
        inside = np.array(inside)
        if inside.any():
            accuracy = np.mean(predicted[inside] == labels[inside])
            total += inside.sum() / len(labels) * abs(accuracy - confidence[inside].mean())
    return total


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_matches_its_definition(seed, bins):
    generator = np.random.default_rng(seed)
    logits = generator.normal(size=(200, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = generator.integers(0, 4, 200)
    assert expected_calibration_error(probs, labels, bins=bins) == pytest.approx(
        _ece_by_loop(probs, labels, bins), abs=1e-12)


def test_ece_known_values():
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.65, 0.35]])
    assert expected_calibration_error(probs, np.array([0, 1, 1, 0]), bins=10) == pytest.approx(
        0.375)
    # Confident and always right, in one bin: no gap.
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 3), np.zeros(3, int)) == 0.0


def test_metrics_binary_and_multiclass():
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1])
    metrics = classification_metrics(probs, labels, num_classes=2)
    assert metrics["accuracy"] == 0.5
    assert metrics["recall[0]"] == 0.5 and metrics["recall[1]"] == 0.5
    assert metrics["macro_auc"] == roc_auc_score(labels, probs[:, 1]) == 0.75
    assert metrics["nll"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.7, 0.4])))

    probs3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    labels3 = np.array([0, 1, 2, 2])
    m3 = classification_metrics(probs3, labels3, num_classes=3)
    assert [m3[f"recall[{c}]"] for c in range(3)] == [1.0, 1.0, 0.5]
    assert m3["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert m3["macro_auc"] == pytest.approx(roc_auc_score(labels3, probs3, multi_class="ovr"))


def test_python_dash_m_matches_the_api_in_another_process(tmp_path):
    """``python -m balancer study`` in a fresh process gives the numbers of ``run_study`` here."""
    import subprocess
    import sys

    out = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "balancer", "study", *QUICK_ARGS, "--strategies",
         "plain,balanced+finetune", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "| balanced+finetune |" in completed.stdout
    theirs = pd.read_csv(out / "results.csv")
    ours = run_study(StudyConfig(strategies=("plain", "balanced+finetune"), seeds=(0,), epochs=2,
                                 finetune_epochs=1, drw_epochs=1, train_limit=256, quick=True,
                                 progress=False))
    test = lambda frame: frame[frame["split"] == "test"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(test(theirs), test(ours), check_exact=False, rtol=1e-12)


def test_missing_csv_file():
    with pytest.raises(FileNotFoundError, match=r"csv='nope\.csv' does not exist; pass the path "
                                                r"of a CSV manifest"):
        load_study_data(csv="nope.csv")


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match=r"dataset='cifar10' is not a shipped data set; choose "
                                         r"one of \['breastmnist', 'pneumoniamnist', "
                                         r"'retinamnist'\]"):
        load_study_data(dataset="cifar10")


def test_npz_images_not_uint8(tmp_path):
    path = _npz(tmp_path / "d.npz", [0, 1], [0, 1], [0, 1])
    arrays = dict(np.load(path))
    arrays["train_images"] = arrays["train_images"].astype(np.float32)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"images should be uint8 \(0-255\), but got dtype "
                                         r"float32"):
        load_study_data(data=path)


def test_csv_empty_label_single_class_and_empty_split(tmp_path):
    csv = _manifest(tmp_path, [{"path": "a.png", "label": "x", "split": "train"},
                               {"path": "b.png", "label": None, "split": "test"}])
    with pytest.raises(ValueError, match=r"label_col='label' is empty in row 1"):
        load_study_data(csv=csv)
    csv = _manifest(tmp_path, [{"path": "a.png", "label": "x", "split": "train"},
                               {"path": "b.png", "label": "x", "split": "test"}])
    with pytest.raises(ValueError, match=r"label_col='label' holds a single class \('x',\)"):
        load_study_data(csv=csv)
    csv = _manifest(tmp_path, [{"path": "a.png", "label": "x", "split": "train"},
                               {"path": "b.png", "label": "y", "split": "train"},
                               {"path": "c.png", "label": "x", "split": "test"}])
    # No val rows: a validation split is carved from train, which needs 2+ samples per class.
    with pytest.raises(ValueError, match=r"no val rows, and class 0 has only 1 training sample"):
        load_study_data(csv=csv)


def test_cli_out_is_a_file_and_bad_seeds(tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(SystemExit):
        main(["study", "--out", str(tmp_path / "taken")])
    assert "is a file; pass a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["study", "--seeds", "0,one"])
    assert "expected comma-separated integers such as 0,1,2, but got '0,one'" in \
        capsys.readouterr().err


@pytest.mark.parametrize("epochs, drw, finetune", [(1, 1, 1), (2, 2, 1), (3, 3, 1), (12, 3, 1)])
def test_phase_lengths_default_to_at_most_the_budget(epochs, drw, finetune):
    # `balancer study --epochs 2 --strategies plain` must not trip over a default never set.
    from balancer.__main__ import build_parser
    from balancer.study._cli import _config
    # The library defaults (--no-tuned: at 12 epochs the shipped RetinaMNIST tuning record
    # would set them, see tests/test_study_tune.py).
    args = build_parser().parse_args(["study", "--epochs", str(epochs), "--strategies", "plain",
                                      "--no-tuned"])
    config = _config(args)
    assert (config.epochs, config.drw_epochs, config.finetune_epochs) == (epochs, drw, finetune)
    config = StudyConfig(epochs=epochs, tuned=False)
    assert (config.drw_epochs, config.finetune_epochs) == (drw, finetune)
    assert config.drs_epochs == config.crt_epochs == min(3, epochs)


def test_explicit_phase_lengths_beyond_the_budget_are_still_refused():
    with pytest.raises(ValueError, match=r"drw_epochs should be an integer <= 2, but got "
                                         r"drw_epochs=3; it must lie in \[0, epochs=2\]"):
        StudyConfig(epochs=2, drw_epochs=3, strategies=("plain",))
    with pytest.raises(ValueError, match=r"finetune_epochs should be an integer <= 2, but got "
                                         r"finetune_epochs=3; it must lie in \[0, epochs=2\]"):
        StudyConfig(epochs=2, finetune_epochs=3, strategies=("plain",))


def test_study_help_gives_every_option_help_and_its_default_once(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # few wrapped lines; "(default:" is never split
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = text[text.index("options:"):]
    # One block per option: its line, then the lines indented past it (wrapped help).
    blocks = re.split(r"\n(?=  -)", options)[1:]
    names = [re.match(r"  (-[\w-]+)", block).group(1) for block in blocks]
    assert len(names) == len(set(names)) >= 25 and "--lr" in names and "--image-col" in names
    for name, block in zip(names, blocks, strict=True):
        help_text = re.sub(r"^  -\S*( [A-Z_.{},a-z-]+)?(, --[\w-]+)?\s*", "", block).strip()
        assert help_text, f"{name} has no help text"
        assert block.count("(default:") <= 1, f"{name} shows its default twice: {block!r}"
    defaults = {"--lr": "0.002", "--batch-size": "64", "--image-col": "path",
                "--seeds": "0,1,2,3,4", "--strategies": "all", "--epochs": "12",
                "--augment": "True", "--train-limit": "all"}
    for name, default in defaults.items():
        (block,) = [b for n, b in zip(names, blocks, strict=True) if n == name]
        assert f"(default: {default})" in " ".join(block.split()), block
