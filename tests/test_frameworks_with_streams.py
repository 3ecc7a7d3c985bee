"""Balanced streams (``balance()`` of a ``DataLoader`` over an ``IterableDataset``) inside the
training frameworks.

The two-process runs start 2 real CPU processes (gloo) with the framework's own launcher
(Lightning's DDP launcher, ``torchrun`` for Accelerate) on a stream of 300 items; each rank
records the keys of every batch it trained on, and this process checks the records
(``_stream_frameworks.check_stream_epochs``): per epoch, the same number of steps on every rank
(data-parallel training steps in lock-step), each rank exactly its own share's balanced batches
(the batches that rank's ``BalancedStream`` makes when built here with ``num_replicas=2`` and its
``rank``) followed by repeats of its first ones, every item at least once, and the fine-tune
epoch one pass at the true frequencies. Every run is also a resume: a first run stops inside the
second balanced epoch through the framework's checkpoint, a second resumes from it, and the two
together must be exactly that plan.
"""

from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch
from _frameworks import load_records
from _stream_frameworks import (
    BATCH_SIZE,
    BUFFER_SIZE,
    COUNTS,
    EPOCHS,
    FINETUNE,
    SEED,
    WORLD_SIZE,
    Stream,
    check_stream_epochs,
    own_batches,
    stream_loader,
)
from test_integrations import TESTS, run_job, torchrun
from torch import nn
from torch.utils.data import DataLoader

from balancer import FineTuneSchedule, balance
from balancer.integrations.torchrun import EvenStreamLoader

# Steps before the checkpoint: the 37th of balanced epoch 1 (39 steps per epoch), where rank 0
# (36 batches of its own) has trained the first of its repeats.
STOP = 76


def check_first_and_rest(out, *, num_workers: int = 0) -> None:
    first, second = load_records(out / "first"), load_records(out / "second")
    assert [len(record["steps"]) for record in first] == [STOP] * WORLD_SIZE
    check_stream_epochs([{"steps": a["steps"] + b["steps"]}
                         for a, b in zip(first, second, strict=True)], num_workers=num_workers)


# --------------------------------------------------------------------- two processes
def test_lightning_ddp_stream_two_processes_in_step_and_ckpt_path_resume(tmp_path):
    ckpt = tmp_path / "checkpoints" / "stop.ckpt"
    job = [sys.executable, str(TESTS / "_job_lightning_stream.py")]
    run_job([*job, "--out", str(tmp_path / "first"), "--stop-after", str(STOP),
             "--ckpt", str(ckpt)])
    assert ckpt.exists()
    run_job([*job, "--out", str(tmp_path / "second"), "--resume", str(ckpt)])
    check_first_and_rest(tmp_path)


# With workers in the slow run only (two launches of two processes each): the default run covers
# ranks x workers in tests/test_stream_ranks.py, and Accelerate with the 0-worker launch.
@pytest.mark.parametrize("num_workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_accelerate_stream_two_processes_in_step_and_save_state_resume(tmp_path, num_workers):
    """With 2 DataLoader workers per process too: the share of each rank is split again between
    its workers, and the stream loader hands their batches out in a fixed order."""
    workers = ["--num-workers", str(num_workers)]
    run_job(torchrun("_job_accelerate_stream.py", "--out", str(tmp_path / "first"),
                     "--stop-after", str(STOP), "--ckpt", str(tmp_path / "state"), *workers))
    run_job(torchrun("_job_accelerate_stream.py", "--out", str(tmp_path / "second"),
                     "--resume", str(tmp_path / "state"), *workers))
    check_first_and_rest(tmp_path, num_workers=num_workers)


# Slow: Ray's start-up takes most of a minute; the default run keeps one Ray launch (the
# map-style loader's, in test_integrations), and the stream's lock-step and resume run under
# Lightning and Accelerate.
@pytest.mark.slow
def test_ray_torchtrainer_stream_two_workers_in_step_and_checkpoint_resume(tmp_path):
    pytest.importorskip("ray")
    from test_integrations import RAY_TIMEOUT

    run_job([sys.executable, str(TESTS / "_job_ray_stream.py"), "--out", str(tmp_path),
             "--stop-after", str(STOP)], timeout=RAY_TIMEOUT)
    check_first_and_rest(tmp_path)


def test_accelerate_prepare_of_a_balanced_stream_is_refused_on_two_processes(tmp_path):
    """``accelerator.prepare(balance(stream_loader))`` rebuilds a loader from
    ``loader.dataset``; both processes must stop at once with the fix, not hang or train on
    something else."""
    run_job(torchrun("_job_accelerate_stream.py", "--out", str(tmp_path), "--natural"))
    for rank in range(WORLD_SIZE):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["steps"] == [], record
        assert "balancer.integrations.accelerate.prepare(accelerator" in record["error"]


# --------------------------------------------------------------------- one process
def test_the_two_ranks_shares_make_different_numbers_of_batches():
    """Why the ranks must be kept in step: on their own, the two ranks' shares of the test
    stream make different numbers of batches in the balanced epochs (so the two-process runs
    above exercise the repeats)."""
    counts = [[len(own_batches(rank, epoch)) for rank in range(WORLD_SIZE)]
              for epoch in range(EPOCHS - FINETUNE)]
    assert all(len(set(pair)) == 2 for pair in counts), counts


def test_a_plain_lightning_trainer_given_a_balanced_stream_loader_fine_tunes():
    import lightning as L

    phases: list[str] = []
    served: list[list[list[int]]] = []
    loader = balance(DataLoader(Stream(), batch_size=BATCH_SIZE), "cls", classes=len(COUNTS),
                     schedule=FineTuneSchedule(EPOCHS, FINETUNE), seed=SEED,
                     buffer_size=BUFFER_SIZE)

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, len(COUNTS))

        def on_train_epoch_start(self):
            phases.append(loader.phase)
            served.append([])

        def training_step(self, batch, batch_index):
            served[-1].append(batch["key"].tolist())
            return nn.functional.cross_entropy(self.net(batch["x"]), batch["cls"])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(Classifier(), loader)
    # Lightning's set_epoch on loader.sampler reached the loader: every epoch is its own.
    assert phases == ["balanced"] * (EPOCHS - FINETUNE) + ["finetune"] * FINETUNE
    assert served == [own_batches(0, epoch, num_replicas=1) for epoch in range(EPOCHS)]


def test_lightning_single_device_stream_advances_epochs_and_fine_tunes():
    import lightning as L

    from balancer.integrations import lightning as balancer_lightning

    seen: list[tuple[int, list[int]]] = []

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, len(COUNTS))

        def train_dataloader(self):
            return balancer_lightning.balance(
                self.trainer, DataLoader(Stream(), batch_size=BATCH_SIZE), "cls",
                classes=len(COUNTS), finetune_epochs=FINETUNE, seed=SEED,
                buffer_size=BUFFER_SIZE)

        def training_step(self, batch, batch_index):
            seen.append((self.current_epoch, batch["key"].tolist()))
            return nn.functional.cross_entropy(self.net(batch["x"]), batch["cls"])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(Classifier())
    served = [[keys for epoch, keys in seen if epoch == e] for e in range(EPOCHS)]
    reference = stream_loader(num_replicas=1, rank=0)
    plan = []
    for epoch in range(EPOCHS):
        reference.set_epoch(epoch)
        plan.append([batch["key"].tolist() for batch in reference])
    assert served == plan
    assert served[0] != served[1]  # epoch 1 is not epoch 0 again
    assert sorted(k for batch in served[-1] for k in batch) == list(range(sum(COUNTS)))


def test_one_rank_even_loader_serves_the_stream_loaders_batches_and_resumes():
    plain, even = stream_loader(), EvenStreamLoader(stream_loader())
    for epoch in range(EPOCHS):
        plain.set_epoch(epoch)
        even.set_epoch(epoch)
        assert [b["key"].tolist() for b in even] == [b["key"].tolist() for b in plain]
    # A position saved after 5 batches of epoch 1 (held=1: the consumer had trained 4).
    held = EvenStreamLoader(stream_loader(), held=1)
    held.set_epoch(1)
    iterator = iter(held)
    for _ in range(5):
        next(iterator)
    state = held.state_dict()
    resumed = EvenStreamLoader(stream_loader(), held=1)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    assert [b["key"].tolist() for b in resumed] == own_batches(0, 1, num_replicas=1)[4:]


def with_longer_peer(loader, *, steps: int, done: int = 0):
    """``loader`` as one rank in step with another rank that has ``steps`` batches in the epoch
    (the core's all-reduced flag is simulated; ``done``: steps already trained, for a resumed
    loader)."""
    count = [done]

    def anyone_has(mine: bool) -> bool:
        count[0] += 1
        return mine or count[0] <= steps

    loader._in_step = True
    loader._anyone_has = anyone_has
    return loader


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("stop", [5, "own - 1", "own + 1", "own + 5"])
def test_a_rank_that_ends_first_repeats_its_first_batches_and_resumes_exactly(stop, num_workers):
    """A rank whose share ends first re-serves the first batches of its epoch (the stream
    loader's one lock-step) until the longest rank ends; a position saved anywhere through an
    EvenStreamLoader (held=1, as under Lightning) -- among its own batches or among the
    repeats, after a resume or not -- continues with exactly the rest."""
    epoch, extra = 1, 6
    plain = stream_loader(num_workers=num_workers)
    plain.set_epoch(epoch)
    own = [b["key"].tolist() for b in plain]  # this rank's own batches, in the loop's order
    if num_workers == 0:
        assert own == own_batches(0, epoch, num_replicas=1)
    full = own + (own[:4] + own[:4])[:extra]

    def build(done: int = 0):
        return with_longer_peer(stream_loader(num_workers=num_workers),
                                steps=len(own) + extra, done=done)

    core = build()
    core.set_epoch(epoch)
    assert [b["key"].tolist() for b in core] == full
    assert core.padded_batches == extra
    stop = eval(stop, {"own": len(own)}) if isinstance(stop, str) else stop
    first = EvenStreamLoader(build(), held=1)
    first.set_epoch(epoch)
    iterator = iter(first)
    for _ in range(stop + 1):  # the consumer holds one batch beyond the `stop` trained
        next(iterator)
    resumed = EvenStreamLoader(build(done=stop), held=1)
    resumed.load_state_dict(first.state_dict())
    resumed.set_epoch(epoch)
    assert [b["key"].tolist() for b in resumed] == full[stop:]
    assert resumed.state_dict()["ranks"][0]["epoch"] == epoch + 1


def test_even_loader_adds_no_lock_step_of_its_own():
    """EvenStreamLoader serves what the stream loader serves: the steps are agreed once."""
    calls = [0]
    core = with_longer_peer(stream_loader(), steps=0)
    agree = core._anyone_has

    def counted(mine: bool) -> bool:
        calls[0] += 1
        return agree(mine)

    core._anyone_has = counted
    even = EvenStreamLoader(core)
    even.set_epoch(0)
    served = list(even)
    assert calls[0] == len(served) + 1  # one agreement per step, and the one that ends it


def test_even_loader_refuses_what_it_cannot_keep_in_step():
    with pytest.raises(TypeError, match=r"loader should be a balancer\.streams\."
                                        r"BalancedStreamLoader.*got DataLoader"):
        EvenStreamLoader(DataLoader(Stream(), batch_size=BATCH_SIZE))
    with pytest.raises(RuntimeError, match=r"num_replicas=2 ranks.*initialised "
                                           r"torch\.distributed process group"):
        EvenStreamLoader(stream_loader(num_replicas=2, rank=1))
    with pytest.raises(ValueError, match=r"held should be .*got held=-1.*fetches ahead"):
        EvenStreamLoader(stream_loader(), held=-1)
    with pytest.raises(ValueError, match=r"held should be .*got held=2.*fetches ahead"):
        EvenStreamLoader(stream_loader(), held=2)
    with pytest.raises(TypeError, match=r"transfer should be a function of a batch.*got str"):
        EvenStreamLoader(stream_loader(), transfer="cuda")
    even = EvenStreamLoader(stream_loader())
    with pytest.raises(ValueError, match=r"state should be a dict from "
                                         r"EvenStreamLoader\.state_dict\(\)"):
        even.load_state_dict({"epoch": 1})
    with pytest.raises(ValueError, match=r"saved by 2 rank\(s\).*num_replicas=1.*resume with "
                                         r"2 rank"):
        even.load_state_dict({"version": 2, "ranks": [{}, {}]})
    with pytest.raises(ValueError, match=r"state should be a dict from .*\(version 2\)"):
        even.load_state_dict({"version": 1, "ranks": [{}]})  # the former two-lock-step state


def test_accelerate_prepare_of_a_stream_in_one_process_serves_the_plan():
    from accelerate import Accelerator

    from balancer.integrations.accelerate import prepare

    accelerator = Accelerator(cpu=True)
    loader = prepare(accelerator, DataLoader(Stream(), batch_size=BATCH_SIZE), "cls",
                     classes=len(COUNTS), schedule=FineTuneSchedule(EPOCHS, FINETUNE),
                     seed=SEED, buffer_size=BUFFER_SIZE)
    served = []
    for epoch in range(loader.iteration, EPOCHS):
        loader.set_epoch(epoch)
        served.append([batch["key"].tolist() for batch in loader])
    assert served == [own_batches(0, epoch, num_replicas=1) for epoch in range(EPOCHS)]


def test_hf_balanced_trainer_refuses_a_stream_with_the_alternatives(tmp_path):
    import transformers

    from balancer.integrations.transformers import BalancedTrainer

    arguments = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                               report_to=[], num_train_epochs=2)
    with pytest.raises(TypeError, match=r"train_dataset is an IterableDataset \(Stream\).*"
                                        r"balancer\.integrations\.accelerate\.prepare"):
        BalancedTrainer(model=nn.Linear(4, 3), args=arguments, train_dataset=Stream(),
                        finetune_epochs=1)


def test_torchdata_stateful_loader_refuses_a_stream_instead_of_leaving_it_unbalanced():
    pytest.importorskip("torchdata")
    from balancer.integrations.torchdata import stateful_loader

    with pytest.raises(TypeError, match=r"loader\.dataset is an IterableDataset \(Stream\).*"
                                        r"balancer\.balance\(loader, labels, classes=\.\.\.\)"):
        stateful_loader(DataLoader(Stream(), batch_size=BATCH_SIZE), "cls", classes=3)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
