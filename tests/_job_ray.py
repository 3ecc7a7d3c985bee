"""Ray Train job for ``test_integrations.py``: ``TorchTrainer`` with
``ScalingConfig(num_workers=2)`` on CPU (gloo). One driver runs two trainings: the first stops
after ``--stop-after`` steps with a checkpoint reported through ``ray.train.report``, the second
resumes from it (a run of the same name and storage: ``ray.train.get_checkpoint()``) and trains
to the end.

    python tests/_job_ray.py --out DIR --stop-after K
    python tests/_job_ray.py --out DIR --multilabel   # one training, both multi-label plans
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ray
import ray.train
import torch
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
)
from ray.train.torch import TorchConfig, TorchTrainer
from torch import nn
from torch.utils.data import DataLoader


def train_func(config: dict) -> None:
    from balancer import FineTuneSchedule, balance
    from balancer.integrations.ray import prepare_data_loader

    torch.set_num_threads(1)
    context = ray.train.get_context()
    torch.manual_seed(0)
    model = ray.train.torch.prepare_model(nn.Linear(FEATURES, len(COUNTS)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = prepare_data_loader(balance(DataLoader(Points(), batch_size=BATCH_SIZE,
                                                    shuffle=True),
                                         schedule=FineTuneSchedule(EPOCHS, FINETUNE), seed=SEED))
    step = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            saved = torch.load(os.path.join(directory, "state.pt"), weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        loader.load_state_dict(saved["loader"])
        step = saved["step"]
    recorder = Recorder(config["out"], context.get_world_rank())
    for epoch in range(loader.balanced.epoch, EPOCHS):
        loader.set_epoch(epoch)
        for features, targets, indices in loader:
            loss = nn.functional.cross_entropy(model(features), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recorder.add(epoch, indices.tolist())
            step += 1
            if step == config["stop_after"]:
                with tempfile.TemporaryDirectory() as directory:
                    if context.get_world_rank() == 0:
                        torch.save({"model": model.state_dict(),
                                    "optimizer": optimizer.state_dict(),
                                    "loader": loader.state_dict(), "step": step},
                                   os.path.join(directory, "state.pt"))
                        ray.train.report({"step": step},
                                         checkpoint=ray.train.Checkpoint.from_directory(directory))
                    else:
                        ray.train.report({"step": step})
                recorder.save()
                return
    recorder.extra["total_batches"] = loader.total_batches()
    recorder.save()
    ray.train.report({"step": step})


def multilabel_train_func(config: dict) -> None:
    """Both multi-label plans in one run of the two workers, ``ML_EPOCHS`` epochs each."""
    from balancer import FineTuneSchedule, balance
    from balancer.integrations.ray import prepare_data_loader

    torch.set_num_threads(1)
    rank = ray.train.get_context().get_world_rank()
    for kind, options in MULTILABEL_SAMPLERS.items():
        torch.manual_seed(0)
        model = ray.train.torch.prepare_model(nn.Linear(FEATURES, len(ML_NAMES)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        loader = prepare_data_loader(balance(
            DataLoader(Findings(), batch_size=BATCH_SIZE, shuffle=True), "findings",
            schedule=FineTuneSchedule(ML_EPOCHS, ML_FINETUNE), seed=SEED, sampler=kind,
            **options))
        recorder = Recorder(os.path.join(config["out"], kind), rank)
        for epoch in range(ML_EPOCHS):
            loader.set_epoch(epoch)
            for features, targets, indices in loader:
                loss = nn.functional.binary_cross_entropy_with_logits(model(features), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                recorder.add(epoch, indices.tolist())
        recorder.extra["total_batches"] = loader.total_batches()
        recorder.save()
    ray.train.report({"done": 1})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--multilabel", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                                       "OMP_NUM_THREADS": "1"}})
    scaling = ray.train.ScalingConfig(num_workers=2, use_gpu=False,
                                      resources_per_worker={"CPU": 1})
    storage = os.path.join(os.path.abspath(args.out), "ray")
    if args.multilabel:
        result = TorchTrainer(
            multilabel_train_func, train_loop_config={"out": args.out},
            scaling_config=scaling, torch_config=TorchConfig(backend="gloo"),
            run_config=ray.train.RunConfig(storage_path=storage, name="multilabel"),
        ).fit()
        assert result.error is None
        ray.shutdown()
        return
    first = TorchTrainer(
        train_func, train_loop_config={"out": os.path.join(args.out, "first"),
                                       "stop_after": args.stop_after},
        scaling_config=scaling, torch_config=TorchConfig(backend="gloo"),
        run_config=ray.train.RunConfig(storage_path=storage, name="run"),
    ).fit()
    second = TorchTrainer(
        train_func, train_loop_config={"out": os.path.join(args.out, "second"),
                                       "stop_after": None},
        scaling_config=scaling, torch_config=TorchConfig(backend="gloo"),
        # The same run name and storage: Ray Train restores the run from its latest checkpoint.
        run_config=ray.train.RunConfig(storage_path=storage, name="run"),
    ).fit()
    assert first.checkpoint is not None and second.error is None
    ray.shutdown()


if __name__ == "__main__":
    main()
