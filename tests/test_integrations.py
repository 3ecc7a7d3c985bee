"""Balanced batches inside training frameworks (``balancer.integrations``).

The framework tests start 2 real CPU processes with the framework's own launcher (Lightning's
DDP launcher, ``torchrun`` for Accelerate and the HF Trainer, Ray's ``TorchTrainer``); each
rank records the indices of every batch it trained on, and this process checks the records
(``_frameworks.check_epochs``): per epoch, equal batch counts per rank, exactly the plan's
batches on every rank (so no position served twice beyond the padding, and none lost), G1 across
ranks in balanced epochs, one true-frequency pass in the fine-tune epoch. Every run is also a
resume: a first run stops mid-epoch after ``STOP`` steps through the framework's checkpoint, a
second resumes from it, and the two together must be exactly the plan of one uninterrupted run.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _frameworks import (
    BATCH_SIZE,
    EPOCHS,
    FINETUNE,
    ML_EPOCHS,
    ML_FINETUNE,
    MULTILABEL_SAMPLERS,
    SEED,
    WORLD_SIZE,
    Findings,
    Points,
    by_epoch,
    check_epochs,
    check_multilabel_epochs,
    load_records,
    multilabel_sampler,
    parse_run,
    run_name,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, DistributedSampler

from balancer import BalancedBatchSampler, FineTuneSchedule, balance, labels_of

TESTS = Path(__file__).parent
ROOT = TESTS.parent
STOP = 40  # steps before the checkpoint: batch 11 of balanced epoch 1 (29 batches per epoch)
# Seconds for one launch (each takes 30-40 s on a loaded 2-core machine; Ray's driver, with its
# two trainings, about 75 s): a hung run fails instead of stalling CI.
TIMEOUT = 240
RAY_TIMEOUT = 360


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def job_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
        TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", RAY_DEDUP_LOGS="0",
        RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS="0", RAY_AUTH_MODE="disabled")
    if os.path.exists("/sys/class/net/lo"):
        env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


def run_job(args: list[str], timeout: float = TIMEOUT) -> None:
    """Run a launcher in its own process group; kill the whole group if it overruns."""
    process = subprocess.Popen(args, cwd=ROOT, env=job_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{args[1:3]} did not finish in {timeout:.0f} s:\n{output[-4000:]}")
    assert process.returncode == 0, output[-6000:]


def torchrun(script: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD_SIZE}",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(TESTS / script),
            *args]


def check_first_and_rest(first: list[dict], second: list[dict]) -> list[dict]:
    """The stopped run made STOP steps on every rank; with the resumed run's steps after them,
    each rank's steps must be one uninterrupted run's plan (checked by check_epochs)."""
    assert [len(record["steps"]) for record in first] == [STOP] * WORLD_SIZE
    joined = [{"steps": a["steps"] + b["steps"]} for a, b in zip(first, second, strict=True)]
    check_epochs(joined)
    return joined


# --------------------------------------------------------------------- the frameworks
def test_lightning_ddp_two_processes_default_sampler_and_ckpt_path_resume(tmp_path):
    ckpt = tmp_path / "checkpoints" / "stop.ckpt"
    job = [sys.executable, str(TESTS / "_job_lightning.py")]
    run_job([*job, "--out", str(tmp_path / "first"), "--stop-after", str(STOP),
             "--ckpt", str(ckpt)])
    assert ckpt.exists()
    run_job([*job, "--out", str(tmp_path / "second"), "--resume", str(ckpt)])
    check_first_and_rest(load_records(tmp_path / "first"), load_records(tmp_path / "second"))


def test_accelerate_torchrun_two_processes_and_save_state_resume(tmp_path):
    run_job(torchrun("_job_accelerate.py", "--out", str(tmp_path / "first"),
                     "--stop-after", str(STOP), "--ckpt", str(tmp_path / "state")))
    run_job(torchrun("_job_accelerate.py", "--out", str(tmp_path / "second"),
                     "--resume", str(tmp_path / "state")))
    first, second = load_records(tmp_path / "first"), load_records(tmp_path / "second")
    check_first_and_rest(first, second)
    # len() of Accelerate's prepared loader follows the phase, and total_batches adds it up.
    lengths = {int(k): v for record in first + second for k, v in record["lengths"].items()}
    assert lengths == {0: 29, 1: 29, 2: 13}
    assert [record["total_batches"] for record in second] == [71, 71]


def test_hf_trainer_torchrun_two_processes_steps_lr_and_resume_from_checkpoint(tmp_path):
    run_job(torchrun("_job_trainer.py", "--out", str(tmp_path / "first"),
                     "--stop-after", str(STOP)))
    assert (tmp_path / "checkpoints" / f"checkpoint-{STOP}").is_dir()
    run_job(torchrun("_job_trainer.py", "--out", str(tmp_path / "second"), "--resume"))
    first, second = load_records(tmp_path / "first"), load_records(tmp_path / "second")
    check_first_and_rest(first, second)
    for record in second:
        # The Trainer planned the run's real number of steps, ran them all, reports the last
        # epoch as 3.0, and its linear LR schedule ended at 0.
        assert record["max_steps"] == record["global_step"] == record["total_batches"] == 71
        assert record["epoch"] == pytest.approx(EPOCHS)
        assert record["last_lr"] == [0.0] * len(record["last_lr"])


def test_ray_torchtrainer_two_workers_and_checkpoint_resume(tmp_path):
    run_job([sys.executable, str(TESTS / "_job_ray.py"), "--out", str(tmp_path),
             "--stop-after", str(STOP)], timeout=RAY_TIMEOUT)
    first, second = load_records(tmp_path / "first"), load_records(tmp_path / "second")
    check_first_and_rest(first, second)
    assert [record["total_batches"] for record in second] == [71, 71]


# --------------------------------------------------------------------- multi-label plans
# The same launchers with balance(..., sampler="label-balanced" / "repeat-factor"): 300 items,
# 3 epochs (2 balanced, then 1 at the true frequencies). Each launch trains one run per ML_RUNS
# entry "KIND:STOP", one after the other in the same two processes: the first launch stops each
# run after STOP steps through the framework's checkpoint, the second resumes each from it. Per
# kind one stop lies inside the second balanced epoch (so a run crosses a balanced-to-balanced
# epoch boundary before its checkpoint) and one inside the fine-tune epoch (checked below).
ML_RUNS = ("label-balanced:26", "label-balanced:45", "repeat-factor:28", "repeat-factor:50")


def planned_lengths(kind: str) -> tuple[dict[int, int], int]:
    """Batches per rank in each epoch, and over the run, from a sampler built here."""
    reference = multilabel_sampler(kind, num_replicas=WORLD_SIZE, rank=0)
    lengths = {}
    for epoch in range(ML_EPOCHS):
        reference.set_epoch(epoch)
        lengths[epoch] = len(reference)
    return lengths, reference.total_batches()


def stopped_in(kind: str, stop: int) -> int:
    """The epoch a run of ``kind`` is in after ``stop`` steps; it must be strictly inside it
    (a stop at an epoch boundary would not test a mid-epoch resume)."""
    lengths, total = planned_lengths(kind)
    ends = np.cumsum([lengths[e] for e in range(ML_EPOCHS)])
    assert 0 < stop < total and stop not in ends, f"{kind}:{stop} is not mid-epoch ({ends})"
    return int(np.searchsorted(ends, stop, side="right"))


def test_the_multilabel_resume_runs_stop_inside_each_phase_of_both_samplers():
    schedule = FineTuneSchedule(ML_EPOCHS, ML_FINETUNE)
    phases = {kind: set() for kind in MULTILABEL_SAMPLERS}
    for spec in ML_RUNS:
        kind, stop = parse_run(spec)
        phases[kind].add(schedule.phase(stopped_in(kind, stop)))
    assert phases == {kind: {"balanced", "finetune"} for kind in MULTILABEL_SAMPLERS}
    # Every balanced stop lies after the first balanced epoch: consecutive balanced epochs are
    # checked across a checkpoint, not only the first.
    for spec in ML_RUNS:
        kind, stop = parse_run(spec)
        epoch = stopped_in(kind, stop)
        assert epoch >= 1, spec


def check_multilabel_resumes(out: Path) -> dict[str, tuple[list[dict], list[dict]]]:
    """Run by run (``out/first/NAME``, ``out/second/NAME``): the stopped run made STOP steps on
    every rank and the resumed run the rest of the plan's steps; joined, each rank's steps are,
    epoch by epoch, its shard of the sampler built directly (check_multilabel_epochs: equal
    batch counts per rank, nothing served twice or lost beyond the padding)."""
    runs = {}
    for spec in ML_RUNS:
        kind, stop = parse_run(spec)
        first = load_records(out / "first" / run_name(spec))
        second = load_records(out / "second" / run_name(spec))
        _, total = planned_lengths(kind)
        assert [len(r["steps"]) for r in first] == [stop] * WORLD_SIZE, spec
        assert [len(r["steps"]) for r in second] == [total - stop] * WORLD_SIZE, spec
        joined = [{"steps": a["steps"] + b["steps"]} for a, b in zip(first, second, strict=True)]
        check_multilabel_epochs(joined, kind)
        runs[spec] = first, second
    return runs


# Slow (with `make test-all`): the default run keeps the multi-label samplers under one
# launcher (Accelerate's torchrun, in this file) and every launcher with the default sampler; the
# adapters reach every sampler kind through the same registry path.
@pytest.mark.slow
def test_lightning_ddp_two_processes_multilabel_samplers_and_ckpt_path_resume(tmp_path):
    job = [sys.executable, str(TESTS / "_job_lightning.py"), "--multilabel", *ML_RUNS]
    run_job([*job, "--out", str(tmp_path / "first"), "--ckpt", str(tmp_path / "ckpt")])
    for spec in ML_RUNS:
        assert (tmp_path / "ckpt" / f"{run_name(spec)}.ckpt").exists()
    run_job([*job, "--out", str(tmp_path / "second"), "--resume", str(tmp_path / "ckpt")])
    check_multilabel_resumes(tmp_path)


def test_accelerate_torchrun_two_processes_multilabel_samplers_and_save_state_resume(tmp_path):
    run_job(torchrun("_job_accelerate.py", "--out", str(tmp_path / "first"), "--multilabel",
                     *ML_RUNS, "--ckpt", str(tmp_path / "state")))
    run_job(torchrun("_job_accelerate.py", "--out", str(tmp_path / "second"), "--multilabel",
                     *ML_RUNS, "--resume", str(tmp_path / "state")))
    for spec, (first, second) in check_multilabel_resumes(tmp_path).items():
        kind, stop = parse_run(spec)
        lengths, total = planned_lengths(kind)
        for before, after in zip(first, second, strict=True):
            # len() of Accelerate's prepared loader is this rank's whole epoch, before and after
            # the resume, and total_batches the run.
            assert {int(k): v for k, v in before["lengths"].items()} == {
                e: lengths[e] for e in range(stopped_in(kind, stop) + 1)}
            assert {int(k): v for k, v in after["lengths"].items()} == {
                e: lengths[e] for e in range(stopped_in(kind, stop), ML_EPOCHS)}
            assert after["total_batches"] == total


# Slow (with `make test-all`): the default run keeps the multi-label samplers under one
# launcher (Accelerate's torchrun, in this file) and every launcher with the default sampler; the
# adapters reach every sampler kind through the same registry path.
@pytest.mark.slow
def test_hf_trainer_torchrun_two_processes_multilabel_samplers_and_resume_from_checkpoint(
        tmp_path):
    run_job(torchrun("_job_trainer.py", "--out", str(tmp_path / "first"), "--multilabel",
                     *ML_RUNS))
    for spec in ML_RUNS:
        stop = parse_run(spec)[1]
        assert (tmp_path / f"checkpoints-{run_name(spec)}" / f"checkpoint-{stop}").is_dir()
    run_job(torchrun("_job_trainer.py", "--out", str(tmp_path / "second"), "--multilabel",
                     *ML_RUNS, "--resume"))
    for spec, (_, second) in check_multilabel_resumes(tmp_path).items():
        _, total = planned_lengths(parse_run(spec)[0])
        for record in second:  # the Trainer planned and ran the plan's real number of steps
            assert record["max_steps"] == record["global_step"] == record["total_batches"] == total


# Slow (with `make test-all`): the default run keeps the multi-label samplers under one
# launcher (Accelerate's torchrun, in this file) and every launcher with the default sampler; the
# adapters reach every sampler kind through the same registry path.
@pytest.mark.slow
def test_ray_torchtrainer_two_workers_multilabel_samplers_and_checkpoint_resume(tmp_path):
    run_job([sys.executable, str(TESTS / "_job_ray.py"), "--out", str(tmp_path),
             "--multilabel", *ML_RUNS], timeout=RAY_TIMEOUT)
    for spec, (_, second) in check_multilabel_resumes(tmp_path).items():
        _, total = planned_lengths(parse_run(spec)[0])
        assert [r["total_batches"] for r in second] == [total] * WORLD_SIZE


# --------------------------------------------------------------------- in-process checks
def test_import_balancer_needs_no_framework():
    code = ("import sys, balancer, balancer.integrations; "
            "print(sorted(m for m in ('lightning', 'accelerate', 'transformers', 'ray', "
            "'torchdata', 'datasets') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=job_env(),
                            capture_output=True, text=True, timeout=120, check=True).stdout
    assert output.strip() == "[]"


def sharded_loader(rank: int = 0, **options):
    dataset = Points()
    plain = DataLoader(dataset, batch_size=BATCH_SIZE,
                       sampler=DistributedSampler(dataset, num_replicas=WORLD_SIZE, rank=rank))
    return balance(plain, schedule=FineTuneSchedule(EPOCHS, FINETUNE), seed=SEED, **options)


def test_sharded_loader_shows_frameworks_a_distributed_sampler_holding_its_shard():
    loader = sharded_loader(rank=1)
    sampler = loader.sampler
    assert isinstance(sampler, DistributedSampler)
    assert (sampler.num_replicas, sampler.rank, sampler.seed) == (WORLD_SIZE, 1, SEED)
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)  # what Lightning and Ray call: it moves the loader
        assert (loader.epoch, sampler.epoch) == (epoch, epoch)
        batches = list(loader.batch_sampler)
        assert list(sampler) == [i for batch in batches for i in batch]
        assert len(sampler) == len(batches) * BATCH_SIZE == sampler.num_samples
    assert loader.phase == "finetune"
    # A single-process loader keeps the DataLoader's own sampler, so a framework running
    # several processes does not mistake it for a sharded one (and rebuilds it: see below).
    single = balance(DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True))
    assert not isinstance(single.sampler, DistributedSampler)


def test_reading_the_shard_sampler_leaves_a_resume_position_alone():
    loader = sharded_loader()
    loader.set_epoch(1)
    iterator = iter(loader)
    first = [next(iterator)[2].tolist() for _ in range(3)]
    state = loader.state_dict()
    assert len(list(loader.sampler)) == 29 * BATCH_SIZE  # the whole epoch
    assert loader.state_dict() == state
    rest = [batch[2].tolist() for batch in iterator]
    reference = BalancedBatchSampler(Points().targets, BATCH_SIZE, seed=SEED,
                                     schedule=FineTuneSchedule(EPOCHS, FINETUNE),
                                     num_replicas=WORLD_SIZE, rank=0)
    reference.set_epoch(1)
    assert first + rest == list(reference)


def test_a_framework_rebuilding_the_batch_sampler_gets_an_error_that_says_where_to_build():
    # Lightning's use_distributed_sampler on a loader built before the process group existed.
    dataset = Points()
    with pytest.raises(TypeError, match=r"got a DistributedSampler.*train_dataloader"):
        BalancedBatchSampler(DistributedSampler(dataset, num_replicas=2, rank=0), BATCH_SIZE)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=2, max_size=5),
       batch_size=st.integers(1, 12), replicas=st.integers(1, 3), total=st.integers(1, 5),
       data=st.data())
def test_total_batches_is_the_sum_of_every_epochs_length(counts, batch_size, replicas, total,
                                                          data):
    finetune = data.draw(st.integers(0, total))
    drop_last = data.draw(st.booleans())
    labels = np.repeat(np.arange(len(counts)), counts)
    schedule = FineTuneSchedule(total, finetune)
    try:
        sampler = BalancedBatchSampler(labels, batch_size, schedule=schedule, drop_last=drop_last,
                                       num_replicas=replicas, rank=replicas - 1)
    except ValueError:
        return  # an epoch with no batch per replica: refused at construction
    lengths = []
    for epoch in range(total):
        sampler.set_epoch(epoch)
        lengths.append(len(list(sampler)))
    assert sampler.total_batches() == sum(lengths)
    assert [sampler.total_batches(e) for e in range(total + 1)] == list(
        np.cumsum([0, *lengths]))


def test_total_batches_on_the_loader_and_its_errors():
    loader = sharded_loader()
    assert loader.total_batches() == 29 + 29 + 13 == loader.total_batches(EPOCHS)
    assert loader.total_batches(0) == 0
    unscheduled = BalancedBatchSampler([0, 0, 1], 2)
    assert unscheduled.total_batches(4) == 4 * 2
    with pytest.raises(ValueError, match=r"needs epochs=N without a schedule"):
        unscheduled.total_batches()
    with pytest.raises(ValueError, match=r"epochs should be"):
        loader.total_batches(-1)
    with pytest.raises(TypeError, match=r"epochs"):
        loader.total_batches(1.5)


def test_labels_from_a_hugging_face_dataset_column_without_decoding_rows():
    import datasets
    labels = [0, 2, 1, 0, 0, 1, 2, 0]
    table = datasets.Dataset.from_dict({"x": list(range(8)), "label": labels,
                                        "fine": [f"c{v}" for v in labels],
                                        "multi": [[v, 1] for v in labels]})

    class NoRows(type(table)):  # any row access would fail: labels come from the Arrow table
        def __getitem__(self, key):
            raise AssertionError("a row was read")

    untouchable = table.with_format(None)
    untouchable.__class__ = NoRows
    assert labels_of(untouchable).tolist() == labels
    assert labels_of(untouchable, "fine").tolist() == [f"c{v}" for v in labels]
    view = table.shuffle(seed=0).select([5, 1, 6])  # an index mapping over the table
    assert labels_of(view).tolist() == [view[i]["label"] for i in range(3)]
    renamed = table.rename_column("label", "labels")
    assert labels_of(renamed).tolist() == labels
    loader = balance(DataLoader(table.with_format("torch"), batch_size=4))
    assert loader.batch_sampler.class_counts.tolist() == [4, 2, 2]
    with pytest.raises(ValueError, match=r"no 'label' or 'labels' column.*labels='fine_label'"):
        labels_of(table.remove_columns("label"))
    with pytest.raises(ValueError, match=r"labels='nope' is not a column.*pick one of"):
        labels_of(table, "nope")
    with pytest.raises(ValueError, match=r"column 'multi'.*multi-label"):
        labels_of(table, "multi")


def lightning_trainer(**options):
    """A real one-process ``lightning.Trainer`` (not started): what ``self.trainer`` is in a
    ``train_dataloader`` hook, with the attributes the adapter reads under their real names."""
    import lightning as L

    settings = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
    return L.Trainer(**{**settings, **options})


def test_lightning_balance_sizes_the_schedule_and_refuses_what_cannot_work():
    from balancer.integrations import lightning as balancer_lightning

    plain = DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True)
    trainer = lightning_trainer(max_epochs=EPOCHS, accumulate_grad_batches=2)
    loader = balancer_lightning.balance(trainer, plain, finetune_epochs=FINETUNE, seed=SEED)
    assert loader.batch_sampler.schedule.state_dict() == {"total_epochs": 3, "finetune_epochs": 1}
    # A restored loader still reports the whole epoch (Lightning adds its own done count).
    loader.set_epoch(0)
    iterator = iter(loader)
    next(iterator)
    loader.load_state_dict(loader.state_dict())
    assert len(loader) == 57
    # 57, 57 and 25 batches, accumulated 2 by 2 (a short last step per epoch)
    assert balancer_lightning.total_steps(trainer, loader) == 29 + 29 + 13
    with pytest.raises(ValueError, match=r"max_epochs=-1.*max_epochs=N"):
        balancer_lightning.balance(lightning_trainer(max_epochs=-1), plain)
    with pytest.raises(ValueError, match=r"finetune_epochs"):
        balancer_lightning.balance(trainer, plain, finetune_epochs=4)
    with pytest.raises(RuntimeError, match=r"no process group.*train_dataloader"):
        balancer_lightning.balance(
            lightning_trainer(max_epochs=3, devices=2, strategy="ddp"), plain)
    with pytest.raises(TypeError, match=r"BalancedDataLoader"):
        balancer_lightning.total_steps(trainer, plain)


def test_accelerate_prepare_in_one_process_drives_the_epochs_itself():
    from accelerate import Accelerator, DataLoaderConfiguration

    from balancer.integrations.accelerate import prepare

    accelerator = Accelerator(cpu=True)
    loader = prepare(accelerator, DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True),
                     schedule=FineTuneSchedule(EPOCHS, FINETUNE), seed=SEED)
    reference = BalancedBatchSampler(Points().targets, BATCH_SIZE, seed=SEED,
                                     schedule=FineTuneSchedule(EPOCHS, FINETUNE))
    for epoch in range(EPOCHS):  # no set_epoch: Accelerate's loader counts its passes
        reference.set_epoch(epoch)
        assert [batch[2].tolist() for batch in loader] == list(reference)
    assert loader.balanced_sampler.phase == "finetune"
    assert loader.total_batches() == 57 + 57 + 25
    plain = DataLoader(Points(), batch_size=BATCH_SIZE)
    with pytest.raises(ValueError, match=r"already prepared"):
        prepare(accelerator, loader)
    with pytest.raises(TypeError, match=r"DataLoader"):
        prepare(accelerator, Points())
    with pytest.raises(ValueError, match=r"no batch_size"):
        prepare(accelerator, DataLoader(Points(), batch_size=None))
    with pytest.raises(ValueError, match=r"split_batches=True.*split_batches=False"):
        prepare(Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(
            split_batches=True)), plain)
    with pytest.raises(ValueError, match=r"dispatch_batches=True"):
        prepare(Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(
            dispatch_batches=True)), plain)
    with pytest.raises(TypeError, match=r"accelerator should be an accelerate\.Accelerator, "
                                        r"but got accelerator=None.*prepare\(accelerator, "):
        prepare(None, plain)


def test_transformers_trainer_refuses_settings_it_cannot_honour(tmp_path):
    import transformers

    from balancer.integrations.transformers import BalancedTrainer

    model = torch.nn.Linear(2, 2)
    for options, message in (({"num_train_epochs": 2.5}, r"num_train_epochs=2.5.*whole"),
                             ({"max_steps": 10}, r"max_steps=10.*leave max_steps unset")):
        args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                              report_to=[], **options)
        with pytest.raises(ValueError, match=message):
            BalancedTrainer(model=model, args=args, train_dataset=Points())
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[],
                                          num_train_epochs=3)
    with pytest.raises(ValueError, match=r"finetune_epochs"):
        BalancedTrainer(model=model, args=args, train_dataset=Points(), finetune_epochs=5)
    with pytest.raises(TypeError, match=r"sampler_options should be a dict of the sampler's "
                                        r"keywords.*but got sampler_options=\[\('threshold', "
                                        r"0\.1\)\] \(list\)"):
        BalancedTrainer(model=model, args=args, train_dataset=Points(),
                        sampler="repeat-factor", sampler_options=[("threshold", 0.1)])
    # An option of a sampler given to BalancedTrainer itself would reach the Trainer, which
    # only says "unexpected keyword argument".
    with pytest.raises(TypeError, match=r"threshold=0\.1 is an option of the 'repeat-factor' "
                                        r"sampler.*BalancedTrainer\(\.\.\., "
                                        r"sampler='repeat-factor', "
                                        r"sampler_options=\{'threshold': 0\.1\}\)"):
        BalancedTrainer(model=model, args=args, train_dataset=Points(), threshold=0.1)
    with pytest.raises(TypeError, match=r"min_bucket_share=0\.5 is an option of the "
                                        r"'label-balanced' sampler.*BalancedTrainer\(\.\.\., "
                                        r"sampler_options=\{'min_bucket_share': 0\.5\}\)"):
        BalancedTrainer(model=model, args=args, train_dataset=Points(),
                        sampler="label-balanced", min_bucket_share=0.5)


def test_adapters_build_the_multilabel_samplers_in_one_process_and_name_a_bad_sampler(tmp_path):
    """lightning.balance, accelerate.prepare and BalancedTrainer take sampler= and its options
    as balance() does (the same plan as the sampler built directly), and refuse an unknown one
    before reading any label."""
    import transformers
    from accelerate import Accelerator

    from balancer.integrations import lightning as balancer_lightning
    from balancer.integrations.accelerate import prepare
    from balancer.integrations.transformers import BalancedTrainer

    def plain():
        return DataLoader(Findings(), batch_size=BATCH_SIZE, shuffle=True)

    trainer = lightning_trainer(max_epochs=ML_EPOCHS)
    accelerator = Accelerator(cpu=True)
    for kind, options in MULTILABEL_SAMPLERS.items():
        reference = multilabel_sampler(kind, num_replicas=1, rank=0)
        lightning_loader = balancer_lightning.balance(
            trainer, plain(), "findings", finetune_epochs=ML_FINETUNE, seed=SEED, sampler=kind,
            **options)
        accelerate_loader = prepare(accelerator, plain(), "findings",
                                    schedule=FineTuneSchedule(ML_EPOCHS, ML_FINETUNE), seed=SEED,
                                    sampler=kind, **options)
        assert type(accelerate_loader.balanced_sampler) is type(reference)
        for epoch in range(ML_EPOCHS):
            reference.set_epoch(epoch)
            lightning_loader.set_epoch(epoch)
            accelerate_loader.set_epoch(epoch)
            expected = list(reference)
            assert [batch[2].tolist() for batch in lightning_loader] == expected
            assert [batch[2].tolist() for batch in accelerate_loader] == expected
    # Nothing rarer than the threshold and no fine-tune epoch: the schedule lightning.balance
    # always builds only counts epochs, so it must not be refused.
    flat = balancer_lightning.balance(trainer, plain(), "findings", seed=SEED,
                                      sampler="repeat-factor", threshold=1e-9)
    assert len(list(flat)) == flat.total_batches() // ML_EPOCHS
    with pytest.raises(ValueError, match=r"sampler should be one of .*sampler='nope'"):
        balancer_lightning.balance(trainer, plain(), "findings", sampler="nope")
    with pytest.raises(ValueError, match=r"sampler should be one of .*sampler='nope'"):
        prepare(accelerator, plain(), "findings", sampler="nope")
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[],
                                          num_train_epochs=2)
    with pytest.raises(ValueError, match=r"sampler should be one of .*sampler='nope'"):
        BalancedTrainer(model=torch.nn.Linear(2, 2), args=args, train_dataset=Findings(),
                        sampler="nope")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_torchdata_stateful_dataloader_resumes_with_exactly_the_remaining_batches(num_workers):
    from balancer.integrations.torchdata import stateful_loader

    def make():
        return stateful_loader(DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True,
                                          num_workers=num_workers),
                               schedule=FineTuneSchedule(EPOCHS, FINETUNE), seed=SEED)

    reference = BalancedBatchSampler(Points().targets, BATCH_SIZE, seed=SEED,
                                     schedule=FineTuneSchedule(EPOCHS, FINETUNE))
    full = []
    for epoch in range(EPOCHS):
        reference.set_epoch(epoch)
        full += [(epoch, batch) for batch in reference]
    stop = 70  # batch 13 of epoch 1 (57 balanced batches per epoch)
    loader, seen = make(), []
    for epoch in range(EPOCHS):
        loader.set_epoch(epoch)
        iterator = iter(loader)
        for batch in iterator:
            seen.append((epoch, batch[2].tolist()))
            if len(seen) == stop:
                break
        if len(seen) == stop:
            state = loader.state_dict()
            del iterator
            break
    del loader
    gc.collect()
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.batch_sampler.epoch == 1
    for epoch in range(resumed.batch_sampler.epoch, EPOCHS):
        resumed.set_epoch(epoch)
        seen += [(epoch, batch[2].tolist()) for batch in resumed]
    assert seen == full
    with pytest.raises(ValueError, match=r"in_order=False"):
        stateful_loader(DataLoader(Points(), batch_size=4, num_workers=1, in_order=False))


def test_check_epochs_catches_a_batch_served_twice():
    """The record checker itself: a plan with one batch duplicated across ranks fails it."""
    reference = [BalancedBatchSampler(Points().targets, BATCH_SIZE, seed=SEED,
                                      schedule=FineTuneSchedule(EPOCHS, FINETUNE),
                                      num_replicas=WORLD_SIZE, rank=rank)
                 for rank in range(WORLD_SIZE)]
    records = [{"steps": []} for _ in reference]
    for epoch in range(EPOCHS):
        for rank, sampler in enumerate(reference):
            sampler.set_epoch(epoch)
            records[rank]["steps"] += [(epoch, batch) for batch in sampler]
    assert sorted(by_epoch(records[0])) == list(range(EPOCHS))
    records[1]["steps"][3] = records[0]["steps"][3]
    with pytest.raises(AssertionError, match=r"rank 1, epoch 0: not the plan's batches"):
        check_epochs(records)
