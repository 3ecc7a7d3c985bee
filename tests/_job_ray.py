"""Ray Train job for ``test_integrations.py``: ``TorchTrainer`` with
``ScalingConfig(num_workers=2)`` on CPU (gloo). One driver runs two trainings: the first stops
after ``--stop-after`` steps with a checkpoint reported through ``ray.train.report``, the second
resumes from it (a run of the same name and storage: ``ray.train.get_checkpoint()``) and trains
to the end.

    python tests/_job_ray.py --out DIR --stop-after K
    python tests/_job_ray.py --out DIR --multilabel KIND:K ...  # the same, per multi-label run

With ``--multilabel`` each of the two trainings runs one sampler run per ``KIND:K``, one after
the other in the same two workers: the first stops each after ``K`` steps and reports one
checkpoint holding every run's state, the second resumes each from it; the records go to
``DIR/first/KIND-K/`` and ``DIR/second/KIND-K/``.
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
    parse_run,
    run_name,
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
    """One sampler run per ``KIND:STOP`` in ``config["runs"]``, ``ML_EPOCHS`` epochs each.

    Without a checkpoint (the first training) each run stops after STOP steps and keeps its
    model, optimizer and loader state; one checkpoint with all of them is reported at the end.
    With one (the second training, restored by Ray) each run loads its state and trains the rest.
    """
    from balancer import FineTuneSchedule, balance
    from balancer.integrations.ray import prepare_data_loader

    torch.set_num_threads(1)
    rank = ray.train.get_context().get_world_rank()
    checkpoint = ray.train.get_checkpoint()
    restored = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            restored = torch.load(os.path.join(directory, "runs.pt"), weights_only=True)
    saved = {}
    for spec in config["runs"]:
        kind, stop = parse_run(spec)
        name = run_name(spec)
        torch.manual_seed(0)
        model = ray.train.torch.prepare_model(nn.Linear(FEATURES, len(ML_NAMES)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        loader = prepare_data_loader(balance(
            DataLoader(Findings(), batch_size=BATCH_SIZE, shuffle=True), "findings",
            schedule=FineTuneSchedule(ML_EPOCHS, ML_FINETUNE), seed=SEED, sampler=kind,
            **MULTILABEL_SAMPLERS[kind]))
        if restored is not None:
            model.load_state_dict(restored[name]["model"])
            optimizer.load_state_dict(restored[name]["optimizer"])
            loader.load_state_dict(restored[name]["loader"])
        recorder = Recorder(os.path.join(config["out"], name), rank)
        step = 0
        for epoch in range(loader.balanced.epoch, ML_EPOCHS):
            loader.set_epoch(epoch)
            for features, targets, indices in loader:
                loss = nn.functional.binary_cross_entropy_with_logits(model(features), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                recorder.add(epoch, indices.tolist())
                step += 1
                if restored is None and step == stop:
                    break
            if restored is None and step == stop:
                saved[name] = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "loader": loader.state_dict()}
                break
        recorder.extra["total_batches"] = loader.total_batches()
        recorder.save()
    if restored is not None:
        ray.train.report({"done": 1})
        return
    with tempfile.TemporaryDirectory() as directory:
        if rank == 0:
            torch.save(saved, os.path.join(directory, "runs.pt"))
            ray.train.report({"done": 0}, checkpoint=ray.train.Checkpoint.from_directory(directory))
        else:
            ray.train.report({"done": 0})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--multilabel", nargs="+", metavar="KIND:STOP", default=[])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                                       "OMP_NUM_THREADS": "1"}})
    scaling = ray.train.ScalingConfig(num_workers=2, use_gpu=False,
                                      resources_per_worker={"CPU": 1})
    storage = os.path.join(os.path.abspath(args.out), "ray")
    function, name = ((multilabel_train_func, "multilabel") if args.multilabel
                      else (train_func, "run"))
    first = TorchTrainer(
        function, train_loop_config={"out": os.path.join(args.out, "first"),
                                     "stop_after": args.stop_after, "runs": args.multilabel},
        scaling_config=scaling, torch_config=TorchConfig(backend="gloo"),
        run_config=ray.train.RunConfig(storage_path=storage, name=name),
    ).fit()
    second = TorchTrainer(
        function, train_loop_config={"out": os.path.join(args.out, "second"),
                                     "stop_after": None, "runs": args.multilabel},
        scaling_config=scaling, torch_config=TorchConfig(backend="gloo"),
        # The same run name and storage: Ray Train restores the run from its latest checkpoint.
        run_config=ray.train.RunConfig(storage_path=storage, name=name),
    ).fit()
    assert first.checkpoint is not None and second.error is None
    ray.shutdown()


if __name__ == "__main__":
    main()
