"""The framework adapters apply the fine-tune phase's BatchNorm policy (``batchnorm=``).

Under each framework's own launcher (2 CPU processes: Lightning's DDP launcher, ``torchrun`` for
Accelerate and the HF Trainer, Ray's ``TorchTrainer``; ``_job_batchnorm.py``) a model with a
``BatchNorm1d`` trains one balanced epoch and one fine-tune epoch per policy, written as each
adapter's docs write it. On every rank: the BatchNorm layer trains in the balanced epoch (its
running statistics move); in the fine-tune epoch it is in eval mode at every step with
``"frozen"`` and its running statistics leave the epoch exactly as they entered it, while with
``"train"`` it is in train mode and they move; the weights (the BatchNorm's affine weight
included) train in both. torchdata's loader and Accelerate's one-process loader are checked
here in one process, and every adapter refuses a bad ``batchnorm``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from _frameworks import BATCH_SIZE, SEED, WORLD_SIZE, Points
from torch import nn
from torch.utils.data import DataLoader

from balancer import FineTuneSchedule

TESTS = Path(__file__).parent
POLICIES = ("frozen", "train")
EPOCHS = 2  # as in _job_batchnorm.py: one balanced epoch, then one fine-tune epoch


def check_policy(out: Path, policy: str) -> None:
    for rank in range(WORLD_SIZE):
        record = json.loads((out / policy / f"rank{rank}.json").read_text())
        steps, final = record["steps"], record["final"]
        balanced = [step for step in steps if step["epoch"] == 0]
        finetune = [step for step in steps if step["epoch"] == 1]
        where = f"{policy}, rank {rank}"
        assert balanced and finetune and len(balanced) + len(finetune) == len(steps), (
            where, [step["epoch"] for step in steps])
        assert all(step["norm_training"] for step in balanced), where
        assert [step["norm_training"] for step in finetune] == [policy == "train"] * len(
            finetune), where
        entering = finetune[0]
        # The balanced epoch moved the statistics, so unchanged ones below are frozen ones.
        assert balanced[0]["running_mean"] != entering["running_mean"], where
        statistics = ("running_mean", "running_var", "batches_tracked")
        if policy == "frozen":
            assert [final[k] for k in statistics] == [entering[k] for k in statistics], where
        else:
            assert final["running_mean"] != entering["running_mean"], where
            assert final["running_var"] != entering["running_var"], where
            assert final["batches_tracked"] == entering["batches_tracked"] + len(finetune), where
        # The weights still train in the fine-tune epoch, the BatchNorm's affine weight included.
        assert final["weight"] != entering["weight"], where
        assert final["norm_weight"] != entering["norm_weight"], where


def check_job(out: Path) -> None:
    for policy in POLICIES:
        check_policy(out, policy)


# --------------------------------------------------------------------- the frameworks' launchers
def test_lightning_ddp_two_processes_freezes_batchnorm_in_the_finetune_epoch(tmp_path):
    from test_integrations import run_job

    run_job([sys.executable, str(TESTS / "_job_batchnorm.py"), "--framework", "lightning",
             "--out", str(tmp_path)])
    check_job(tmp_path)


def test_accelerate_torchrun_two_processes_train_mode_on_the_prepared_loader(tmp_path):
    from test_integrations import run_job, torchrun

    run_job(torchrun("_job_batchnorm.py", "--framework", "accelerate", "--out", str(tmp_path)))
    check_job(tmp_path)


def test_hf_trainer_torchrun_two_processes_freezes_batchnorm_after_its_model_train(tmp_path):
    from test_integrations import run_job, torchrun

    run_job(torchrun("_job_batchnorm.py", "--framework", "trainer", "--out", str(tmp_path)))
    check_job(tmp_path)


# Slow: Ray's start-up alone takes most of a minute; the default run keeps one Ray launch (the
# sampler's, in test_integrations) and this one runs with `make test-all`.
@pytest.mark.slow
def test_ray_torchtrainer_two_workers_train_mode_on_ray_s_wrapper(tmp_path):
    from test_integrations import RAY_TIMEOUT, run_job

    run_job([sys.executable, str(TESTS / "_job_batchnorm.py"), "--framework", "ray",
             "--out", str(tmp_path)], timeout=RAY_TIMEOUT)
    check_job(tmp_path)


# --------------------------------------------------------------------- one process
@pytest.fixture
def one_thread():
    """Intra-op threads fight the other processes on a loaded machine: one thread trains these
    tiny models ~30x faster there (0.6 s against 19 s measured for two epochs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def train_epochs(loader, model: nn.Sequential, *, set_epoch: bool) -> list[dict]:
    """Run ``EPOCHS`` epochs the documented way; per epoch: the BatchNorm's mode and its
    running mean entering and leaving it."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    epochs = []
    for epoch in range(EPOCHS):
        if set_epoch:
            loader.set_epoch(epoch)
        loader.train_mode(model)
        entering = model[1].running_mean.clone()
        training = model[1].training
        for features, targets, _ in loader:
            loss = nn.functional.cross_entropy(model(features), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epochs.append({"training": training, "entering": entering,
                       "leaving": model[1].running_mean.clone()})
    return epochs


def check_epochs(epochs: list[dict], policy: str) -> None:
    balanced, finetune = epochs
    assert balanced["training"] and not torch.equal(balanced["entering"], balanced["leaving"])
    assert finetune["training"] == (policy == "train")
    assert torch.equal(finetune["entering"], finetune["leaving"]) == (policy == "frozen")


@pytest.mark.parametrize("policy", POLICIES)
def test_torchdata_stateful_loader_train_mode_applies_the_schedule_s_policy(policy, one_thread):
    from balancer.integrations.torchdata import stateful_loader

    loader = stateful_loader(DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True), seed=SEED,
                             schedule=FineTuneSchedule(EPOCHS, 1, batchnorm=policy))
    check_epochs(train_epochs(loader, small_model(), set_epoch=True), policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_accelerate_prepared_loader_train_mode_follows_the_next_pass_without_set_epoch(
        policy, one_thread):
    """Accelerate sets the sampler's epoch only when a pass starts; ``train_mode`` before the
    pass must already take the coming epoch's phase (Accelerate's ``iteration``)."""
    from accelerate import Accelerator

    from balancer.integrations.accelerate import prepare

    loader = prepare(Accelerator(cpu=True), DataLoader(Points(), batch_size=BATCH_SIZE,
                                                       shuffle=True),
                     schedule=FineTuneSchedule(EPOCHS, 1, batchnorm=policy), seed=SEED)
    check_epochs(train_epochs(loader, small_model(), set_epoch=False), policy)


def lightning_trainer(**settings):
    import lightning as L

    return L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **settings)


def test_lightning_balance_adds_one_callback_for_frozen_and_none_for_train():
    from balancer.integrations import lightning as balancer_lightning

    def callbacks(trainer):
        return [c for c in trainer.callbacks if type(c).__name__ == "FineTuneBatchNorm"]

    plain = DataLoader(Points(), batch_size=BATCH_SIZE)
    trainer = lightning_trainer()
    balancer_lightning.balance(trainer, plain, finetune_epochs=1)
    assert callbacks(trainer) == []
    first = balancer_lightning.balance(trainer, plain, finetune_epochs=1, batchnorm="frozen")
    assert [c.loader for c in callbacks(trainer)] == [first]
    # The hook called again (reload_dataloaders_every_n_epochs): one callback, on the new loader.
    second = balancer_lightning.balance(trainer, plain, finetune_epochs=1, batchnorm="frozen")
    assert [c.loader for c in callbacks(trainer)] == [second]


def test_lightning_single_device_keeps_frozen_batchnorm_after_mid_epoch_validation(one_thread):
    """``val_check_interval`` validates mid-epoch and Lightning then restores the module's
    modes; a validation hook calling ``model.train()`` (the default hook's body) must not undo
    the policy for the rest of the fine-tune epoch."""
    import lightning as L

    from balancer.integrations import lightning as balancer_lightning

    modes: list[tuple[int, bool]] = []

    class Classifier(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_model()

        def train_dataloader(self):
            return balancer_lightning.balance(
                self.trainer, DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True),
                finetune_epochs=1, batchnorm="frozen", seed=SEED)

        def val_dataloader(self):
            return DataLoader(Points(), batch_size=50)

        def training_step(self, batch, batch_idx):
            features, targets, _ = batch
            modes.append((self.current_epoch, self.net[1].training))
            return nn.functional.cross_entropy(self.net(features), targets)

        def validation_step(self, batch, batch_idx):
            features, targets, _ = batch
            return nn.functional.cross_entropy(self.net(features), targets)

        def on_validation_model_train(self) -> None:
            self.trainer.model.train()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    lightning_trainer(val_check_interval=10, num_sanity_val_steps=0).fit(Classifier())
    assert {epoch for epoch, _ in modes} == {0, 1}
    assert all(training for epoch, training in modes if epoch == 0)
    assert not any(training for epoch, training in modes if epoch == 1)


# --------------------------------------------------------------------- bad input
def test_the_adapters_refuse_a_bad_batchnorm_before_any_work(tmp_path):
    import transformers

    from balancer.integrations import lightning as balancer_lightning
    from balancer.integrations.transformers import BalancedTrainer

    plain = DataLoader(Points(), batch_size=BATCH_SIZE)
    with pytest.raises(ValueError, match=r"batchnorm should be one of \['frozen', 'train'\], "
                                         r"but got batchnorm='freeze'; pass batchnorm='frozen'"):
        balancer_lightning.balance(lightning_trainer(), plain, finetune_epochs=1,
                                   batchnorm="freeze")
    with pytest.raises(TypeError, match=r"batchnorm should be one of .*batchnorm=True"):
        balancer_lightning.balance(lightning_trainer(), plain, batchnorm=True)
    arguments = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                               report_to=[], num_train_epochs=EPOCHS)
    with pytest.raises(ValueError, match=r"but got batchnorm='freeze'; pass batchnorm='frozen'"):
        BalancedTrainer(model=small_model(), args=arguments, train_dataset=Points(),
                        finetune_epochs=1, batchnorm="freeze")
    # Accelerate, Ray Train and torchdata take the schedule, which refuses it when built.
    with pytest.raises(ValueError, match=r"but got batchnorm='freeze'"):
        FineTuneSchedule(EPOCHS, 1, batchnorm="freeze")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
