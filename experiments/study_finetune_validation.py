"""How should balanced+finetune fine-tune? A grid on the VALIDATION split only.

Varies the fine-tune phase of ``balanced+finetune`` (its length, learning-rate factor, and
whether the backbone is frozen) against ``plain`` and ``balanced`` under the study's budget,
with the final weights (``select="last"``, so the fine-tune phase is what is measured), and
prints validation metrics only: the test split is never read into this table.

    .venv/bin/python experiments/study_finetune_validation.py                    # RetinaMNIST
    .venv/bin/python experiments/study_finetune_validation.py --dataset pneumoniamnist --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import itertools
import time

import pandas as pd

from balancer.study import StudyConfig, prepare_data, run_study

METRICS = ["accuracy", "balanced_accuracy", "macro_f1", "nll"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="retinamnist")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=StudyConfig.epochs)
    parser.add_argument("--finetune-epochs", default="1,3")
    parser.add_argument("--lr-scales", default="0.1,1.0")
    args = parser.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    # No post-hoc rows: each variant's validation means must be its trained row's alone.
    base = StudyConfig(dataset=args.dataset, seeds=seeds, epochs=args.epochs, select="last",
                       progress=False, posthoc=False)
    data = prepare_data(base)

    variants: list[tuple[str, StudyConfig]] = [
        ("plain", StudyConfig(**{**base.to_dict(), "strategies": ("plain",)})),
        ("balanced (no fine-tune)", StudyConfig(**{**base.to_dict(),
                                                   "strategies": ("balanced",)})),
    ]
    grid = itertools.product([int(f) for f in args.finetune_epochs.split(",")],
                             [float(s) for s in args.lr_scales.split(",")], (True, False))
    for finetune, scale, freeze in grid:
        variants.append((
            f"balanced+finetune ft={finetune} lr x{scale} {'frozen' if freeze else 'all layers'}",
            StudyConfig(**{**base.to_dict(), "strategies": ("balanced+finetune",),
                           "finetune_epochs": finetune, "finetune_lr_scale": scale,
                           "finetune_freeze": freeze})))

    rows = []
    start = time.perf_counter()
    for label, config in variants:
        results = run_study(config, data)
        val = results[results["split"] == "val"]  # validation only, by construction
        means = val.groupby("metric")["value"].mean()
        stds = val.groupby("metric")["value"].std()
        rows.append({"variant": label,
                     **{m: f"{means[m]:.3f} ± {stds[m]:.3f}" for m in METRICS}})
        print(f"{time.perf_counter() - start:6.0f}s  {label}", flush=True)
    table = pd.DataFrame(rows)
    print(f"\nValidation split of {args.dataset}, final weights, seeds {list(seeds)}, "
          f"{args.epochs} epochs:\n")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
