"""Issue 22: what should BatchNorm do in the fine-tune phase of balanced+finetune?

For each data set and seed this trains, on the official train split, with the final weights
evaluated once on the test split (nothing is selected or tuned on test):

    plain   shuffled batches at the true class frequencies, E epochs
    b0      balanced batches for E epochs (no fine-tune; same budget)
    b1      balanced for E-1 epochs, then one fine-tune epoch at the true frequencies,
            lr x0.1, BatchNorm in train mode (its statistics re-estimated as usual)
    b2      the same fine-tune epoch with BatchNorm statistics frozen: BN layers in eval mode
            (their running mean/var stay as balanced training left them), their affine
            weights and every other parameter still train
    b3      no weight update: the E-1-epoch balanced model with its BN statistics re-estimated
            by one pass over the train split at the true frequencies (the fine-tune epoch's
            batches, train mode, torch.no_grad, BN's default momentum)

b0..b3 branch from one and the same checkpoint (model and optimizer state after E-1 balanced
epochs). Models and settings are the comparison study's: ``SmallCNN`` (width 16) for the
MedMNIST images without augmentation, ``MLP`` (width 64) for tables; AdamW, lr 2e-3, weight
decay 1e-4, batch 64, 12 epochs. The tables are one-vs-rest tasks on the MULAN yeast
features (``/work/shared/data/multilabel``), standardised with train statistics.

Commands (from the repository root):

    PYTHONPATH=$PWD nice -n 10 /work/main/.venv/bin/python experiments/finetune_batchnorm.py
    PYTHONPATH=$PWD nice -n 10 /work/main/.venv/bin/python experiments/finetune_batchnorm.py \\
        --seeds 0,1,2 --datasets yeast-Class14,breastmnist --out /tmp/bn.md

The markdown goes to ``--out`` (default ``experiments/results/finetune_batchnorm.md``), the
per-seed numbers to the same path with ``.json``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.io import arff
from torch import nn

from balancer import BalancedBatchSampler, FineTuneSchedule, load_medmnist
from balancer.study._metrics import classification_metrics
from balancer.study._model import MLP, SmallCNN
from balancer.study._strategies import INIT, _ShuffledPasses, seeded_generator

# ---- settings (the study's defaults, balancer/study/_config.py) ----
EPOCHS = 12
BATCH_SIZE = 64
LR = 2e-3
WEIGHT_DECAY = 1e-4
FINETUNE_LR_SCALE = 0.1
CNN_WIDTH = 16          # SmallCNN width (study: width=16)
MLP_WIDTH = 64          # MLP width (study: 4 * width)
ECE_BINS = 15
SEEDS = (0, 1, 2, 3, 4)
IMAGE_SETS = ("breastmnist", "pneumoniamnist", "retinamnist")
# Yeast one-vs-rest labels: train positives 21 (1.4%), 98 (6.5%), 161 (10.7%), 476 (31.7%).
YEAST_LABELS = ("Class14", "Class9", "Class10", "Class1")
DATASETS = tuple(f"yeast-{name}" for name in YEAST_LABELS) + IMAGE_SETS
YEAST_DIR = Path("/work/shared/data/multilabel")
OUT = Path(__file__).parent / "results" / "finetune_batchnorm.md"

VARIANTS = {
    "plain": "plain training (reference)",
    "b0": "b0 no fine-tune (balanced)",
    "b1": "b1 fine-tune, BN train mode",
    "b2": "b2 fine-tune, BN statistics frozen",
    "b3": "b3 no update, BN re-estimated",
}
METRICS = ("accuracy", "balanced_accuracy", "nll", "ece", "p_majority")


def load(name: str) -> dict:
    """Train/test inputs (float tensors, normalised with train statistics) and labels."""
    if name.startswith("yeast-"):
        label = name.split("-", 1)[1]
        splits = {}
        for split in ("train", "test"):
            with gzip.open(YEAST_DIR / f"yeast-{split}.arff.gz", "rt") as handle:
                rows, meta = arff.loadarff(io.StringIO(handle.read()))
            features = [n for n in meta.names() if not n.startswith("Class")]
            x = np.stack([rows[n].astype(np.float64) for n in features], 1)
            y = rows[label].astype(np.int64)
            splits[split] = (x, y)
        mean = splits["train"][0].mean(0)
        std = splits["train"][0].std(0).clip(1e-6)
        data = {f"{k}_{s}": torch.as_tensor(v if k == "y" else (v - mean) / std,
                                            dtype=torch.long if k == "y" else torch.float32)
                for s, (x, y) in splits.items() for k, v in (("x", x), ("y", y))}
        data["kind"], data["channels"] = "table", data["x_train"].shape[1]
        return data
    data = {}
    for split in ("train", "test"):
        images, labels = load_medmnist(name, split)
        x = torch.as_tensor(images).float().div(255.0)
        x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
        data[f"x_{split}"], data[f"y_{split}"] = x, torch.as_tensor(labels)
    pixels = data["x_train"].transpose(0, 1).reshape(data["x_train"].shape[1], -1)
    mean = pixels.mean(1)[None, :, None, None]
    std = pixels.std(1).clamp_min(1e-3)[None, :, None, None]
    for split in ("train", "test"):
        data[f"x_{split}"] = (data[f"x_{split}"] - mean) / std
    data["kind"], data["channels"] = "image", data["x_train"].shape[1]
    return data


def make_model(data: dict, num_classes: int, seed: int) -> nn.Module:
    generator = seeded_generator(seed, INIT)
    if data["kind"] == "table":
        return MLP(data["channels"], num_classes, width=MLP_WIDTH, generator=generator)
    return SmallCNN(data["channels"], num_classes, width=CNN_WIDTH, generator=generator)


def set_bn_eval(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def run_epoch(model, optimizer, data, batches, *, lr: float, freeze_bn: bool = False) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    if freeze_bn:
        set_bn_eval(model)
    criterion = nn.CrossEntropyLoss()
    for batch in batches:
        index = torch.as_tensor(batch, dtype=torch.long)
        loss = criterion(model(data["x_train"][index]), data["y_train"][index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def reestimate_bn(model, data, batches) -> None:
    model.train()
    for batch in batches:
        model(data["x_train"][torch.as_tensor(batch, dtype=torch.long)])
    model.eval()


@torch.no_grad()
def evaluate(model, data, num_classes: int, majority: int) -> dict[str, float]:
    model.eval()
    x = data["x_test"]
    logits = torch.cat([model(x[i: i + 512]) for i in range(0, len(x), 512)])
    probs = torch.softmax(logits.double(), 1).numpy()
    labels = data["y_test"].numpy()
    metrics = classification_metrics(probs, labels, num_classes=num_classes, ece_bins=ECE_BINS)
    out = {k: float(metrics[k]) for k in ("accuracy", "balanced_accuracy", "nll", "ece")}
    out["p_majority"] = float(probs[:, majority].mean())
    return out


def optimizer_for(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)


def branch(model, optimizer):
    """A copy of (model, optimizer state) to continue from the shared checkpoint."""
    new_model = copy.deepcopy(model)
    new_optimizer = optimizer_for(new_model)
    new_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    return new_model, new_optimizer


def run_seed(data: dict, seed: int) -> dict[str, dict[str, float]]:
    labels = data["y_train"].numpy()
    n = len(labels)
    num_classes = int(labels.max()) + 1
    majority = int(np.bincount(labels).argmax())
    torch.manual_seed(seed)
    results = {}

    # plain: E shuffled epochs at the true frequencies
    model = make_model(data, num_classes, seed)
    optimizer = optimizer_for(model)
    shuffled = _ShuffledPasses(np.arange(n), BATCH_SIZE, n, seed)
    for epoch in range(EPOCHS):
        shuffled.set_epoch(epoch)
        run_epoch(model, optimizer, data, list(shuffled), lr=LR)
    results["plain"] = evaluate(model, data, num_classes, majority)

    # balanced trunk: E-1 balanced epochs (the schedule's balanced phase)
    schedule = FineTuneSchedule(EPOCHS, 1)
    scheduled = BalancedBatchSampler(labels, BATCH_SIZE, seed=seed, samples_per_epoch=n,
                                     schedule=schedule)
    unscheduled = BalancedBatchSampler(labels, BATCH_SIZE, seed=seed, samples_per_epoch=n)
    model = make_model(data, num_classes, seed)
    optimizer = optimizer_for(model)
    for epoch in range(EPOCHS - 1):
        scheduled.set_epoch(epoch)
        run_epoch(model, optimizer, data, list(scheduled), lr=LR)
    last = EPOCHS - 1
    unscheduled.set_epoch(last)
    balanced_batches = list(unscheduled)
    scheduled.set_epoch(last)
    finetune_batches = list(scheduled)
    assert schedule.is_finetune(last)

    m, o = branch(model, optimizer)
    run_epoch(m, o, data, balanced_batches, lr=LR)
    results["b0"] = evaluate(m, data, num_classes, majority)

    m, o = branch(model, optimizer)
    run_epoch(m, o, data, finetune_batches, lr=LR * FINETUNE_LR_SCALE)
    results["b1"] = evaluate(m, data, num_classes, majority)

    m, o = branch(model, optimizer)
    run_epoch(m, o, data, finetune_batches, lr=LR * FINETUNE_LR_SCALE, freeze_bn=True)
    results["b2"] = evaluate(m, data, num_classes, majority)

    m, _ = branch(model, optimizer)
    reestimate_bn(m, data, finetune_batches)
    results["b3"] = evaluate(m, data, num_classes, majority)

    # sanity: the fine-tune batches follow the true frequencies, the balanced ones do not
    ft = np.bincount(labels[np.concatenate(finetune_batches)], minlength=num_classes)
    bal = np.bincount(labels[np.concatenate(balanced_batches)], minlength=num_classes)
    results["_batches"] = {"finetune_majority_share": float(ft[majority] / ft.sum()),
                           "balanced_majority_share": float(bal[majority] / bal.sum())}
    return results


def fmt(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"


def gap_closed(value: float, balanced: float, plain: float) -> str:
    """Where ``value`` lies on the line balanced (0) -> plain (1)."""
    if abs(plain - balanced) < 1e-9:
        return "n/a"
    return f"{(value - balanced) / (plain - balanced):+.2f}"


def report(name: str, data: dict, per_seed: dict[int, dict], seconds: float, load: tuple) -> str:
    labels = data["y_train"].numpy()
    counts = np.bincount(labels).tolist()
    test_counts = np.bincount(data["y_test"].numpy()).tolist()
    seeds = sorted(per_seed)
    lines = [f"### {name}", "",
             f"train counts {counts}, test counts {test_counts}; seeds {seeds}; "
             f"{seconds:.0f} s; load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after.",
             "",
             "| variant | accuracy | balanced acc. | NLL | ECE | mean p(majority) |",
             "|---|---|---|---|---|---|"]
    means = {}
    for key, label in VARIANTS.items():
        cells = []
        for metric in METRICS:
            values = [per_seed[s][key][metric] for s in seeds]
            means[key, metric] = float(np.mean(values))
            cells.append(fmt(values))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Position on the balanced (0) -> plain (1) line, from the means "
              "(negative: away from plain; above 1: past plain; unstable where plain and b0 nearly agree):", "",
              "| variant | accuracy | NLL | mean p(majority) |", "|---|---|---|---|"]
    for key in ("b1", "b2", "b3"):
        cells = [gap_closed(means[key, m], means["b0", m], means["plain", m])
                 for m in ("accuracy", "nll", "p_majority")]
        lines.append(f"| {VARIANTS[key]} | " + " | ".join(cells) + " |")
    # paired per-seed comparisons of the two fine-tunes
    wins = {m: sum(per_seed[s]["b1"][m] > per_seed[s]["b2"][m] for s in seeds)
            for m in ("accuracy", "balanced_accuracy", "nll")}
    n = len(seeds)
    lines += ["", f"Per seed, b1 (BN train mode) higher than b2 (frozen): accuracy "
              f"{wins['accuracy']}/{n}, balanced acc. {wins['balanced_accuracy']}/{n}, "
              f"NLL {wins['nll']}/{n} seeds (NLL: lower is better)."]
    verdict = []
    for key in ("b1", "b2", "b3"):
        moves = []
        for metric, label in (("accuracy", "accuracy"), ("nll", "NLL"),
                              ("p_majority", "p(majority)")):
            delta = means[key, metric] - means["b0", metric]
            closer = (abs(means[key, metric] - means["plain", metric])
                      < abs(means["b0", metric] - means["plain", metric]))
            moves.append(f"{label} {delta:+.3f} vs b0 ({'closer to' if closer else 'further from'}"
                         f" plain)")
        bacc = means[key, "balanced_accuracy"] - means["b0", "balanced_accuracy"]
        moves.append(f"balanced acc. {bacc:+.3f} vs b0")
        verdict.append(f"- {key}: " + ", ".join(moves))
    lines += ["", "Direction (means; 'closer to plain' compares the distances to plain's mean):",
              "", *verdict, ""]
    return "\n".join(lines)


def environment() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [f"- CPU: {cpu} ({os.cpu_count()} logical cores visible); run with "
            f"`torch.set_num_threads(1)` under `nice -n 10`",
            f"- torch {torch.__version__}, numpy {np.__version__}, Python "
            f"{platform.python_version()}",
            f"- settings: epochs {EPOCHS}, batch {BATCH_SIZE}, AdamW lr {LR}, weight decay "
            f"{WEIGHT_DECAY}, fine-tune lr x{FINETUNE_LR_SCALE}, SmallCNN width {CNN_WIDTH} "
            f"(no augmentation), MLP width {MLP_WIDTH}, ECE {ECE_BINS} bins"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [s.strip() for s in args.datasets.split(",") if s.strip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sections, raw, total = [], {}, time.perf_counter()
    for name in names:
        data = load(name)
        before, start = os.getloadavg()[0], time.perf_counter()
        per_seed = {}
        for seed in seeds:
            t = time.perf_counter()
            per_seed[seed] = run_seed(data, seed)
            print(f"{name} seed {seed}: {time.perf_counter() - t:.1f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
        seconds = time.perf_counter() - start
        raw[name] = per_seed
        sections.append(report(name, data, per_seed, seconds, (before, os.getloadavg()[0])))
        print(sections[-1], flush=True)
        # write after every data set so that a cut-off run leaves what it has
        text = "\n".join([
            "# Issue 22: BatchNorm in the fine-tune phase", "",
            f"Generated by `experiments/finetune_batchnorm.py` (started {started}; "
            f"{time.perf_counter() - total:.0f} s so far; data sets done: "
            f"{', '.join(raw)} of {', '.join(names)}).", "", "## Environment", "",
            *environment(), "", "## Results (test split, final weights, mean ± std over seeds)",
            "", *sections])
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
