"""BatchNorm in the fine-tune epoch under each framework's launcher, for
``test_framework_batchnorm.py``:

    python tests/_job_batchnorm.py --framework lightning --out DIR    # Lightning's DDP launcher
    torchrun --nproc_per_node=2 tests/_job_batchnorm.py --framework accelerate --out DIR
    torchrun --nproc_per_node=2 tests/_job_batchnorm.py --framework trainer --out DIR
    python tests/_job_batchnorm.py --framework ray --out DIR          # TorchTrainer, 2 workers

Each launch trains a small model with a ``BatchNorm1d`` twice in the same two processes,
``EPOCHS`` epochs each (one balanced, then one fine-tune), once per policy in ``POLICIES``, each
the way the adapter's docs write it: ``balance(..., batchnorm=)`` for Lightning,
``BalancedTrainer(batchnorm=)``, a ``FineTuneSchedule(batchnorm=)`` and the loop's
``loader.train_mode(model)`` for Accelerate and Ray Train. Before every training forward the
model records the epoch, its BatchNorm layer's mode, running statistics and a weight; each rank
writes them, and the same after training, to ``DIR/<policy>/rank<r>.json``. Nothing is checked
inside the ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from _frameworks import BATCH_SIZE, COUNTS, FEATURES, SEED, Points, close_process_group
from torch import nn
from torch.utils.data import DataLoader

EPOCHS, FINETUNE = 2, 1
POLICIES = ("frozen", "train")
LEARNING_RATE = 0.05


class Net(nn.Module):
    """``Linear -> BatchNorm1d -> ReLU -> Linear``; ``epoch`` is set by the loop driving it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(FEATURES, 8)
        self.norm = nn.BatchNorm1d(8)
        self.out = nn.Linear(8, len(COUNTS))
        self.epoch = -1
        self.steps: list[dict] = []

    def snapshot(self) -> dict:
        return {"running_mean": self.norm.running_mean.tolist(),
                "running_var": self.norm.running_var.tolist(),
                "batches_tracked": int(self.norm.num_batches_tracked),
                "weight": self.hidden.weight.detach().flatten().tolist(),
                "norm_weight": self.norm.weight.detach().tolist()}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.training:  # a training step, not an evaluation
            self.steps.append({"epoch": self.epoch, "norm_training": self.norm.training,
                               **self.snapshot()})
        return self.out(torch.relu(self.norm(self.hidden(features))))

    def save(self, out: str, policy: str, rank: int) -> None:
        path = Path(out) / policy / f"rank{rank}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"steps": self.steps, "final": self.snapshot()}))


# ----------------------------------------------------------------------------- Lightning
def lightning(out: str) -> None:
    import lightning as L

    from balancer.integrations import lightning as balancer_lightning

    class Classifier(L.LightningModule):
        def __init__(self, policy: str) -> None:
            super().__init__()
            self.net, self.policy = Net(), policy

        def train_dataloader(self):
            return balancer_lightning.balance(
                self.trainer, DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True),
                finetune_epochs=FINETUNE, batchnorm=self.policy, seed=SEED)

        def training_step(self, batch, batch_idx):
            features, targets, _ = batch
            self.net.epoch = self.current_epoch
            return nn.functional.cross_entropy(self.net(features), targets)

        def on_train_end(self) -> None:
            self.net.save(out, self.policy, self.global_rank)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LEARNING_RATE)

    for policy in POLICIES:  # Lightning keeps the process group between the two fits
        trainer = L.Trainer(max_epochs=EPOCHS, strategy="ddp", devices=2, accelerator="cpu",
                            logger=False, enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, num_sanity_val_steps=0)
        trainer.fit(Classifier(policy))


# ----------------------------------------------------------------------------- Accelerate
def accelerate(out: str) -> None:
    from accelerate import Accelerator

    from balancer import FineTuneSchedule
    from balancer.integrations.accelerate import prepare

    accelerator = Accelerator(cpu=True)
    for policy in POLICIES:
        net = Net()
        loader = prepare(accelerator, DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True),
                         schedule=FineTuneSchedule(EPOCHS, FINETUNE, batchnorm=policy), seed=SEED)
        model, optimizer = accelerator.prepare(
            net, torch.optim.SGD(net.parameters(), lr=LEARNING_RATE))
        for epoch in range(loader.iteration, EPOCHS):
            loader.set_epoch(epoch)
            loader.train_mode(model)  # on Accelerate's prepared loader and the DDP-wrapped model
            net.epoch = epoch
            for features, targets, _ in loader:
                loss = nn.functional.cross_entropy(model(features), targets)
                optimizer.zero_grad()
                accelerator.backward(loss)
                optimizer.step()
        net.save(out, policy, accelerator.process_index)
    accelerator.wait_for_everyone()


# ----------------------------------------------------------------------------- HF Trainer
def trainer(out: str) -> None:
    import datasets
    import transformers

    from balancer.integrations.transformers import BalancedTrainer

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net()

        def forward(self, features, labels, index):
            logits = self.net(features)
            return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Epoch(transformers.TrainerCallback):
        """The sampler's epoch, which BalancedTrainer sets after on_epoch_begin, before the
        epoch's first step."""

        def __init__(self, holder: list, net: Net) -> None:
            self.holder, self.net = holder, net

        def on_step_begin(self, args, state, control, **kwargs):
            self.net.epoch = self.holder[0].balanced_sampler.epoch

    points = Points()
    train_set = datasets.Dataset.from_dict({
        "features": points.features.tolist(), "labels": points.targets.tolist(),
        "index": list(range(len(points))),
    }).with_format("torch")
    rank = int(os.environ.get("RANK", 0))
    for policy in POLICIES:
        arguments = transformers.TrainingArguments(
            output_dir=os.path.join(out, "checkpoints"), num_train_epochs=EPOCHS,
            per_device_train_batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=SEED,
            use_cpu=True, save_strategy="no", report_to=[], logging_strategy="no",
            disable_tqdm=True, dataloader_num_workers=0, ddp_backend="gloo")
        model, holder = Model(), []
        balanced = BalancedTrainer(model=model, args=arguments, train_dataset=train_set,
                                   finetune_epochs=FINETUNE, batchnorm=policy,
                                   callbacks=[Epoch(holder, model.net)])
        holder.append(balanced)
        balanced.train()
        model.net.save(out, policy, rank)


# ----------------------------------------------------------------------------- Ray Train
def ray_train_func(config: dict) -> None:
    import ray.train
    import ray.train.torch

    from balancer import FineTuneSchedule, balance
    from balancer.integrations.ray import prepare_data_loader

    torch.set_num_threads(1)
    rank = ray.train.get_context().get_world_rank()
    for policy in POLICIES:
        net = Net()
        model = ray.train.torch.prepare_model(net)
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        loader = prepare_data_loader(balance(
            DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True), seed=SEED,
            schedule=FineTuneSchedule(EPOCHS, FINETUNE, batchnorm=policy)))
        for epoch in range(loader.balanced.epoch, EPOCHS):
            loader.set_epoch(epoch)
            loader.train_mode(model)  # on Ray's wrapper and the DDP-wrapped model
            net.epoch = epoch
            for features, targets, _ in loader:
                loss = nn.functional.cross_entropy(model(features), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        net.save(config["out"], policy, rank)
    ray.train.report({"done": 1})


def ray_driver(out: str) -> None:
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                                       "OMP_NUM_THREADS": "1"}})
    result = TorchTrainer(
        ray_train_func, train_loop_config={"out": os.path.abspath(out)},
        scaling_config=ray.train.ScalingConfig(num_workers=2, use_gpu=False,
                                               resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="gloo"),
        run_config=ray.train.RunConfig(storage_path=os.path.join(os.path.abspath(out), "ray"),
                                       name="batchnorm"),
    ).fit()
    assert result.error is None, result.error
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", required=True,
                        choices=["lightning", "accelerate", "trainer", "ray"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if args.framework == "ray":
        ray_driver(args.out)
        return
    {"lightning": lightning, "accelerate": accelerate, "trainer": trainer}[args.framework](
        args.out)
    close_process_group()


if __name__ == "__main__":
    main()
