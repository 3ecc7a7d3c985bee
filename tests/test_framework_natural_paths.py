"""The paths a user of each framework takes without reading balancer's adapters.

Each is written as that framework's own documentation would have it: ``balance(loader)`` handed
to a plain ``lightning.Trainer``, ``transformers.Trainer`` or ``accelerator.prepare``, and a plain
loop. Each is either exact (every epoch is the plan's epoch, phases included) or refused with an
error or warning naming the fix. The one-process cases run here; the two-process Accelerate case
runs under ``torchrun`` (``_job_accelerate_natural.py``).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from _frameworks import BATCH_SIZE, COUNTS, EPOCHS, FINETUNE, SEED, Points
from torch import nn
from torch.utils.data import DataLoader

from balancer import BalancedBatchSampler, FineTuneSchedule, balance

TESTS = Path(__file__).parent
# 200 items (150, 40, 10) in batches of 8: balanced epochs of 3 x 150 = 450 samples (57 batches),
# then one fine-tune epoch of the 200 (25 batches).
LENGTHS = [57, 57, 25]


def plan(epochs: int = EPOCHS) -> list[list[list[int]]]:
    reference = BalancedBatchSampler(Points().targets, BATCH_SIZE, seed=SEED,
                                     schedule=FineTuneSchedule(EPOCHS, FINETUNE))
    batches = []
    for epoch in range(epochs):
        reference.set_epoch(epoch)
        batches.append(list(reference))
    return batches


class Recording(nn.Module):
    """A linear model on ``Points`` that records the indices of every batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, len(COUNTS))
        self.seen: list[list[int]] = []

    def forward(self, features, labels=None, index=None):
        self.seen.append(index.tolist())
        logits = self.net(features)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_lightning_single_device_advances_epochs_and_fine_tunes(recwarn):
    """One process, no process group: Lightning calls ``set_epoch`` only on ``loader.sampler``
    and ``loader.batch_sampler.sampler``; the balanced loader must be reached through one."""
    import lightning as L

    from balancer.integrations import lightning as balancer_lightning

    seen: list[tuple[int, list[int]]] = []

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, len(COUNTS))

        def train_dataloader(self):
            return balancer_lightning.balance(
                self.trainer, DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True),
                finetune_epochs=FINETUNE, seed=SEED)

        def training_step(self, batch, batch_index):
            features, labels, index = batch
            seen.append((self.current_epoch, index.tolist()))
            return nn.functional.cross_entropy(self.net(features), labels)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(Classifier())
    assert [[batch for epoch, batch in seen if epoch == e] for e in range(EPOCHS)] == plan()
    assert trainer.global_step == sum(LENGTHS)
    assert not [w for w in recwarn if "iterated again" in str(w.message)]


def test_plain_loop_in_one_process_advances_epochs_with_set_epoch():
    loader = balance(DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True), seed=SEED,
                     schedule=FineTuneSchedule(EPOCHS, FINETUNE))
    served = []
    for epoch in range(EPOCHS):
        loader.set_epoch(epoch)
        served.append([batch[2].tolist() for batch in loader])
    assert served == plan()
    assert loader.phase == "finetune"
    # Forgetting set_epoch is not silent.
    with pytest.warns(UserWarning, match=r"iterated again without set_epoch.*fine-tune"):
        list(loader)
        list(loader)


def test_accelerate_prepare_of_a_balanced_loader_in_one_process_is_exact():
    """One process: Accelerate wraps the loader without sharding it and sets its epoch at every
    pass, so ``accelerator.prepare(model, optimizer, balance(loader))`` is exact."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = nn.Linear(4, len(COUNTS))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = balance(DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True), seed=SEED,
                     schedule=FineTuneSchedule(EPOCHS, FINETUNE))
    model, optimizer, prepared = accelerator.prepare(model, optimizer, loader)
    # No set_epoch in the loop: Accelerate's loader counts its passes.
    assert [[batch[2].tolist() for batch in prepared] for _ in range(EPOCHS)] == plan()


def test_accelerate_prepare_of_a_sharded_balanced_loader_is_refused_on_two_processes(tmp_path):
    from test_integrations import run_job, torchrun

    run_job(torchrun("_job_accelerate_natural.py", "--out", str(tmp_path)))
    for rank in range(2):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["batches"] == 0, record
        assert "already sharded across 2 processes" in record["error"]
        assert "balancer.integrations.accelerate.prepare(accelerator, DataLoader(" in record["error"]


class _NaturalTrainer:
    """Builds the ``transformers.Trainer`` subclass HF's docs and forums give for a custom
    loader: ``get_train_dataloader`` returns ``balance(DataLoader(...))``."""

    @staticmethod
    def build(tmp_path: Path, **args):
        import transformers

        class Trainer(transformers.Trainer):
            def get_train_dataloader(self):
                return balance(DataLoader(self.train_dataset, batch_size=BATCH_SIZE,
                                          shuffle=True, collate_fn=collate), seed=SEED,
                               schedule=FineTuneSchedule(EPOCHS, FINETUNE))

        model = Recording()
        arguments = transformers.TrainingArguments(
            output_dir=str(tmp_path), use_cpu=True, report_to=[], num_train_epochs=EPOCHS,
            per_device_train_batch_size=BATCH_SIZE, save_strategy="no", logging_strategy="no",
            disable_tqdm=True, dataloader_num_workers=0, **args)
        return Trainer(model=model, args=arguments, train_dataset=Points()), model


def collate(items):
    features, labels, index = zip(*items, strict=True)
    return {"features": torch.stack(features), "labels": torch.tensor(labels),
            "index": torch.tensor(index)}


def test_hf_trainer_subclass_returning_a_balanced_loader_advances_epochs_and_warns(tmp_path):
    """The Trainer sets the epoch and runs each epoch for its own length, so the batches are the
    plan's; but it planned max_steps from the first epoch, which a warning names."""
    trainer, model = _NaturalTrainer.build(tmp_path)
    with pytest.warns(UserWarning, match=r"len\(loader\) \* epochs = 171.*total_batches\(\) = "
                                         r"139.*BalancedTrainer"):
        trainer.train()
    served, start = [], 0
    for length in LENGTHS:
        served.append(model.seen[start:start + length])
        start += length
    assert served == plan() and len(model.seen) == sum(LENGTHS)
    assert trainer.state.max_steps == 171  # the Trainer's own plan, which the warning reports


def test_a_loader_without_a_schedule_gives_the_hf_trainer_equal_epochs_and_no_warning(tmp_path):
    import transformers

    class Trainer(transformers.Trainer):
        def get_train_dataloader(self):
            return balance(DataLoader(self.train_dataset, batch_size=BATCH_SIZE, shuffle=True,
                                      collate_fn=collate), seed=SEED)

    model = Recording()
    arguments = transformers.TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], num_train_epochs=2,
        save_strategy="no", logging_strategy="no", disable_tqdm=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*transformers\.Trainer is driving.*")
        Trainer(model=model, args=arguments, train_dataset=Points()).train()
    assert len(model.seen) == 2 * LENGTHS[0]
    assert model.seen[:LENGTHS[0]] != model.seen[LENGTHS[0]:]  # epoch 1 is not epoch 0 again


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
