"""The natural Accelerate path, for ``test_framework_natural_paths.py``:

    torchrun --nproc_per_node=2 tests/_job_accelerate_natural.py --out DIR

``accelerator.prepare(model, optimizer, balance(loader))``, as Accelerate's docs write it for any
DataLoader. The balanced loader is already sharded (the process group exists), and Accelerate's
``BatchSamplerShard`` would shard it again; the first pass must refuse. Each rank writes
``{"batches": served before the error, "error": message}`` to ``DIR/rank<r>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from _frameworks import BATCH_SIZE, COUNTS, EPOCHS, FEATURES, FINETUNE, SEED, Points
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from balancer import FineTuneSchedule, balance


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    model = nn.Linear(FEATURES, len(COUNTS))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = balance(DataLoader(Points(), batch_size=BATCH_SIZE, shuffle=True), seed=SEED,
                     schedule=FineTuneSchedule(EPOCHS, FINETUNE))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    served, error = 0, None
    try:
        for _ in range(EPOCHS):
            for _batch in loader:
                served += 1
    except RuntimeError as caught:
        error = str(caught)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{accelerator.process_index}.json").write_text(
        json.dumps({"batches": served, "error": error}))
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()
