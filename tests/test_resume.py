"""Checkpoint and resume across a real process restart, with and without DataLoader workers.

A first process trains k steps, saves model, optimizer and loader state with torch.save and
exits; a second process loads them and trains to the end. The batches it sees must be exactly
the rest of an uninterrupted run's, and the final weights the same.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from _resume_job import train

JOB = Path(__file__).with_name("_resume_job.py")
# (num_workers, stop after step): mid balanced epoch 1 without workers; mid fine-tune epoch with
# workers. An epoch has 23 balanced or 11 fine-tune batches.
CASES = [(0, 30), (2, 50)]


def run_stage(jobs):
    """Run the jobs' processes side by side; each must exit cleanly."""
    processes = [subprocess.Popen([sys.executable, str(JOB), *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for args in jobs]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output


def test_resume_in_a_new_process_continues_with_exactly_the_remaining_batches(tmp_path):
    reference = tmp_path / "reference.pt"
    train(str(reference), str(tmp_path / "unused.pt"))
    full = torch.load(reference, weights_only=True)
    assert len(full["seen"]) == 2 * 23 + 11

    def args(case, stage):
        workers, stop = case
        name = f"w{workers}-s{stop}"
        extra = ["--stop-after", str(stop)] if stage == "first" else []
        return ["--out", str(tmp_path / f"{name}-{stage}.pt"),
                "--checkpoint", str(tmp_path / f"{name}.ckpt"),
                "--num-workers", str(workers), *extra]

    run_stage([args(case, "first") for case in CASES])
    run_stage([args(case, "second") for case in CASES])
    assert not (tmp_path / "unused.pt").exists()
    for workers, stop in CASES:
        name = f"w{workers}-s{stop}"
        first = torch.load(tmp_path / f"{name}-first.pt", weights_only=True)
        second = torch.load(tmp_path / f"{name}-second.pt", weights_only=True)
        assert first["seen"] == full["seen"][:stop], name
        assert second["seen"] == full["seen"][stop:], name
        torch.testing.assert_close(second["weights"], full["weights"], rtol=0, atol=0)


def test_resume_from_the_last_batch_of_an_epoch_moves_on(tmp_path):
    """A checkpoint taken after an epoch's last batch resumes with nothing left of that epoch."""
    reference = tmp_path / "reference.pt"
    train(str(reference), str(tmp_path / "unused.pt"), num_workers=0)
    full = torch.load(reference, weights_only=True)
    checkpoint = tmp_path / "ckpt.pt"
    train(str(tmp_path / "first.pt"), str(checkpoint), stop_after=23)
    saved = torch.load(checkpoint, weights_only=True)["loader"]
    assert (saved["epoch"], saved["batches_done"]) == (1, 0)  # the next epoch's start
    train(str(tmp_path / "second.pt"), str(checkpoint))
    second = torch.load(tmp_path / "second.pt", weights_only=True)
    assert second["seen"] == full["seen"][23:]
    torch.testing.assert_close(second["weights"], full["weights"], rtol=0, atol=0)
