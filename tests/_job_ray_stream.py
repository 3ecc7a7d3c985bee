"""Ray Train job for ``test_frameworks_with_streams.py``: a balanced stream under ``TorchTrainer``
with ``ScalingConfig(num_workers=2)`` on CPU (gloo), through
``balancer.integrations.ray.prepare_data_loader``. One driver runs two trainings: the first
stops after ``--stop-after`` steps with a checkpoint reported through ``ray.train.report``, the
second resumes from it (the same run name and storage: ``ray.train.get_checkpoint()``).

    python tests/_job_ray_stream.py --out DIR --stop-after K
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
from _frameworks import Recorder
from _stream_frameworks import (
    BATCH_SIZE,
    BUFFER_SIZE,
    COUNTS,
    EPOCHS,
    FEATURES,
    FINETUNE,
    SEED,
    Stream,
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
    loader = prepare_data_loader(balance(DataLoader(Stream(), batch_size=BATCH_SIZE), "cls",
                                         classes=len(COUNTS), seed=SEED,
                                         schedule=FineTuneSchedule(EPOCHS, FINETUNE),
                                         buffer_size=BUFFER_SIZE))
    step = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            saved = torch.load(os.path.join(directory, "state.pt"), weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        loader.load_state_dict(saved["loader"])
        step = saved["step"]
    recorder = Recorder(config["out"], context.get_world_rank())
    for epoch in range(loader.epoch, EPOCHS):
        loader.set_epoch(epoch)
        for batch in loader:
            loss = nn.functional.cross_entropy(model(batch["x"]), batch["cls"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recorder.add(epoch, batch["key"].tolist())
            step += 1
            if step == config["stop_after"]:
                state = loader.state_dict()  # every worker: it gathers their positions
                with tempfile.TemporaryDirectory() as directory:
                    if context.get_world_rank() == 0:
                        torch.save({"model": model.state_dict(),
                                    "optimizer": optimizer.state_dict(),
                                    "loader": state, "step": step},
                                   os.path.join(directory, "state.pt"))
                        ray.train.report({"step": step},
                                         checkpoint=ray.train.Checkpoint.from_directory(directory))
                    else:
                        ray.train.report({"step": step})
                recorder.save()
                return
    recorder.save()
    ray.train.report({"step": step})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int, required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                                       "OMP_NUM_THREADS": "1"}})
    scaling = ray.train.ScalingConfig(num_workers=2, use_gpu=False,
                                      resources_per_worker={"CPU": 1})
    storage = os.path.join(os.path.abspath(args.out), "ray")
    runs = []
    for part, stop in (("first", args.stop_after), ("second", None)):
        runs.append(TorchTrainer(
            train_func, train_loop_config={"out": os.path.join(args.out, part), "stop_after": stop},
            scaling_config=scaling, torch_config=TorchConfig(backend="gloo"),
            # The same run name and storage: the second training restores the first's checkpoint.
            run_config=ray.train.RunConfig(storage_path=storage, name="stream"),
        ).fit())
    assert runs[0].checkpoint is not None and runs[1].error is None
    ray.shutdown()


if __name__ == "__main__":
    main()
