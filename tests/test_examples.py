"""Smoke runs of the example scripts in reduced modes: single process, and under torchrun."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _distributed import free_port, loopback_env
from torch import nn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, args, monkeypatch, capsys):
    """Run an example in this process, as `python examples/<name> <args>` would."""
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *args])
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_ddp_train_single_process(monkeypatch, capsys, tmp_path):
    checkpoint = tmp_path / "run.pt"
    args = ["--epochs", "2", "--limit", "256", "--checkpoint", str(checkpoint)]
    out = run_example("ddp_train.py", args, monkeypatch, capsys)
    assert "1 process(es) on cpu; 256 training images" in out
    assert re.search(r"epoch 0 \(balanced\) \d+ batches, loss \d\.\d+", out)
    assert re.search(r"epoch 1 \(finetune\) 2 batches", out)  # 256 at true frequencies / 128
    assert re.search(r"test: accuracy \d\.\d+, balanced accuracy \d\.\d+, per-class recall", out)
    # The checkpoint holds the loader's position; a rerun resumes after the last epoch.
    out = run_example("ddp_train.py", args, monkeypatch, capsys)
    assert "resumed from" in out and "at epoch 2" in out
    assert not re.search(r"epoch \d \(", out)  # the finished run trains no epoch again


def test_ddp_train_under_torchrun_with_two_processes():
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               str(EXAMPLES / "ddp_train.py"), "--epochs", "2", "--limit", "256"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240,
                            env={**os.environ, **loopback_env()})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "2 process(es) on cpu; 256 training images, 2 batches of 128 per process" in out
    # Both ranks' batches are counted (all-reduced): 2 x 2 balanced, 2 x 1 fine-tune.
    assert re.search(r"epoch 0 \(balanced\) 4 batches", out)
    assert re.search(r"epoch 1 \(finetune\) 2 batches", out)
    assert out.count("test: accuracy") == 1  # evaluated and printed by rank 0 only


def test_medical_imaging_reduced_run(monkeypatch, capsys):
    args = ["--epochs", "2", "--finetune-epochs", "1", "--limit", "400", "--loss", "ldam"]
    out = run_example("medical_imaging.py", args, monkeypatch, capsys)
    assert "400 training images" in out and "1 balanced + 1 fine-tune epochs, loss 'ldam'" in out
    assert "flips and shifts per batch" in out
    assert re.search(r"epoch 0 \(balanced\) +\d+ batches, loss \d+\.\d+, val balanced accuracy", out)
    assert re.search(r"epoch 1 \(finetune\) +4 batches", out)  # 400 true-frequency samples / 128
    assert re.search(r"test \(624 images\): accuracy \d\.\d{3}, balanced accuracy \d\.\d{3}", out)
    assert re.search(r"per-class recall: normal \d\.\d{3}, pneumonia \d\.\d{3}", out)


@pytest.mark.parametrize("loss", ["ldam", "logit-adjusted", "weighted"])
def test_medical_imaging_subset_missing_classes(monkeypatch, capsys, loss):
    """The first 8 RetinaMNIST training images hold classes 0, 3 and 4 only: counts are reported
    per label (0 for the absent ones) and the count-based losses still train."""
    args = ["--dataset", "retinamnist", "--limit", "8", "--epochs", "2", "--finetune-epochs", "1",
            "--loss", loss, "--augment", "0"]
    out = run_example("medical_imaging.py", args, monkeypatch, capsys)
    assert "no augmentation" in out
    assert "8 training images, counts {'0': 5, '1': 0, '2': 0, '3': 1, '4': 2}" in out
    assert "no training image of class(es) 1, 2 in the first 8 images" in out
    assert re.search(r"epoch 1 \(finetune\) +1 batches, loss \d+\.\d+", out)
    assert re.search(r"per-class recall: 0 \d\.\d{3}, 1 \d\.\d{3}, 2 .*, 4 \d\.\d{3}", out)


def test_medical_imaging_losses_per_phase():
    example = runpy.run_path(str(EXAMPLES / "medical_imaging.py"))
    true_counts = torch.tensor([1214.0, 3494.0])
    equal_counts = torch.full_like(true_counts, 3494.0)
    logits, targets = torch.tensor([[0.3, -0.2], [1.0, 2.0]]), torch.tensor([0, 1])
    plain = nn.functional.cross_entropy(logits, targets)
    for name in example["LOSSES"]:
        for finetune in (False, True):
            counts = true_counts if finetune else equal_counts
            value = example["make_loss"](name, counts, true_counts, finetune)(logits, targets)
            assert torch.isfinite(value), name
            if name in ("weighted", "logit-adjusted"):
                # Balanced batches already have equal frequencies: no second correction.
                matches = torch.allclose(value, plain)
                assert matches != finetune, (name, finetune)
    with pytest.raises(ValueError, match="loss should be one of"):
        example["make_loss"]("dice", true_counts, true_counts, False)


def test_multilabel_chestxray_quick(monkeypatch, capsys):
    out = run_example("multilabel_chestxray.py", ["--limit", "5000", "--epochs", "1"],
                      monkeypatch, capsys)
    assert "5000 images, 14 findings, 2755 with no finding, 3396 positives" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if re.match(r"^[A-Z][a-z_A-Z]+ +\d+ +0\.\d{3}", line)}
    assert len(rows) == 14 and rows["Hernia"][0] == "27"
    plain, rfs, rfs_plan, balanced, plan = (float(v) for v in rows["Hernia"][1:])
    assert plain < rfs < balanced  # the rarest finding: 0.5% -> repeated -> ~11% of slots
    assert abs(balanced - plan) < 0.01 and abs(rfs - rfs_plan) < 0.01
    spreads = [float(x) for x in re.findall(r"\(x(\d+\.\d) apart\)", out)]
    assert len(spreads) == 3 and spreads[0] > spreads[1] > spreads[2]  # plain, rfs, balanced
