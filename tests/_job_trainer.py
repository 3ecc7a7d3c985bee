"""Hugging Face Trainer job for ``test_integrations.py``, started by ``torchrun --nproc_per_node=2``.

    torchrun ... tests/_job_trainer.py --out DIR --stop-after K   # K steps, checkpoint-K, stop
    torchrun ... tests/_job_trainer.py --out DIR --resume         # train(resume_from_checkpoint)
    torchrun ... tests/_job_trainer.py --out DIR --multilabel KIND:K ...           # K steps each
    torchrun ... tests/_job_trainer.py --out DIR --multilabel KIND:K ... --resume  # the rest

The training set is a ``datasets.Dataset`` whose ``labels`` column the sampler reads directly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import datasets
import torch
import transformers
from _frameworks import (
    BATCH_SIZE,
    COUNTS,
    EPOCHS,
    FEATURES,
    FINETUNE,
    ML_EPOCHS,
    ML_FINETUNE,
    ML_NAMES,
    MULTILABEL_SAMPLERS,
    SEED,
    Findings,
    Points,
    Recorder,
    close_process_group,
    parse_run,
    run_name,
)
from torch import nn

from balancer.integrations.transformers import BalancedTrainer


class Tiny(nn.Module):
    def __init__(self, multilabel: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(FEATURES, len(ML_NAMES) if multilabel else len(COUNTS))
        self.loss = (nn.functional.binary_cross_entropy_with_logits if multilabel
                     else nn.functional.cross_entropy)
        self.seen: list[list[int]] = []

    def forward(self, features, labels, index):
        self.seen.append(index.tolist())
        logits = self.net(features)
        return {"loss": self.loss(logits, labels), "logits": logits}


class Stop(transformers.TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True
            control.should_training_stop = True
        return control


class Record(transformers.TrainerCallback):
    """Pairs every step's indices with the epoch the sampler was in."""

    def __init__(self, trainer_ref: list, model: Tiny, recorder: Recorder) -> None:
        self.trainer_ref, self.model, self.recorder = trainer_ref, model, recorder

    def on_step_end(self, args, state, control, **kwargs):
        epoch = self.trainer_ref[0].balanced_sampler.epoch
        for indices in self.model.seen:
            self.recorder.add(epoch, indices)
        self.model.seen.clear()
        return control


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--multilabel", nargs="+", metavar="KIND:STOP", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if args.multilabel:
        multilabel(args.out, args.multilabel, resume=args.resume)
        return
    points = Points()
    train_set = datasets.Dataset.from_dict({
        "features": points.features.tolist(), "labels": points.targets.tolist(),
        "index": list(range(len(points))),
    }).with_format("torch")
    checkpoints = os.path.join(os.path.dirname(os.path.abspath(args.out)), "checkpoints")
    training_args = transformers.TrainingArguments(
        output_dir=checkpoints, num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH_SIZE,
        learning_rate=0.05, lr_scheduler_type="linear", warmup_steps=0, seed=SEED, use_cpu=True,
        save_strategy="no", report_to=[], logging_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, ddp_backend="gloo", remove_unused_columns=True,
    )
    model = Tiny()
    rank = int(os.environ.get("RANK", 0))
    recorder = Recorder(args.out, rank)
    trainer_ref: list = []
    callbacks = [Record(trainer_ref, model, recorder)]
    if args.stop_after:
        callbacks.append(Stop(args.stop_after))
    trainer = BalancedTrainer(model=model, args=training_args, train_dataset=train_set,
                              finetune_epochs=FINETUNE, callbacks=callbacks)
    trainer_ref.append(trainer)
    last = None
    if args.resume:
        last = transformers.trainer_utils.get_last_checkpoint(checkpoints)
    trainer.train(resume_from_checkpoint=last)
    state = trainer.state
    recorder.extra.update({"max_steps": state.max_steps, "global_step": state.global_step,
                           "epoch": state.epoch, "last_lr": trainer.lr_scheduler.get_last_lr(),
                           "total_batches": trainer.balanced_sampler.total_batches()})
    recorder.save()
    sys.stdout.write(json.dumps(recorder.extra) + "\n")


def multilabel(out: str, specs: list[str], *, resume: bool) -> None:
    """One ``BalancedTrainer.train()`` per ``KIND:STOP``, one after the other in these two
    processes, ``ML_EPOCHS`` epochs each; the findings are given with ``labels=``. The first job
    stops each after STOP steps with ``checkpoint-STOP`` in ``checkpoints-KIND-STOP`` (next to
    ``out``), the second resumes each with ``resume_from_checkpoint``; the records go to
    ``out/KIND-STOP/``."""
    findings = Findings()
    train_set = datasets.Dataset.from_dict({
        "features": findings.features.tolist(), "labels": findings.target.tolist(),
        "index": list(range(len(findings))),
    }).with_format("torch")
    rank = int(os.environ.get("RANK", 0))
    for spec in specs:
        kind, stop = parse_run(spec)
        name = run_name(spec)
        checkpoints = os.path.join(os.path.dirname(os.path.abspath(out)), f"checkpoints-{name}")
        training_args = transformers.TrainingArguments(
            output_dir=checkpoints, num_train_epochs=ML_EPOCHS,
            per_device_train_batch_size=BATCH_SIZE, learning_rate=0.05, seed=SEED,
            use_cpu=True, save_strategy="no", report_to=[], logging_strategy="no",
            disable_tqdm=True, dataloader_num_workers=0, ddp_backend="gloo",
        )
        model = Tiny(multilabel=True)
        recorder = Recorder(os.path.join(out, name), rank)
        trainer_ref: list = []
        callbacks = [Record(trainer_ref, model, recorder)]
        if not resume:
            callbacks.append(Stop(stop))
        trainer = BalancedTrainer(model=model, args=training_args, train_dataset=train_set,
                                  finetune_epochs=ML_FINETUNE, labels=findings.findings,
                                  sampler=kind, sampler_options=MULTILABEL_SAMPLERS[kind],
                                  callbacks=callbacks)
        trainer_ref.append(trainer)
        last = transformers.trainer_utils.get_last_checkpoint(checkpoints) if resume else None
        trainer.train(resume_from_checkpoint=last)
        recorder.extra.update({"max_steps": trainer.state.max_steps,
                               "global_step": trainer.state.global_step,
                               "total_batches": trainer.balanced_sampler.total_batches()})
        recorder.save()


if __name__ == "__main__":
    main()
    close_process_group()
