"""Our losses and sampler against whichever peer packages are installed, as ratios timed in one run.

Usage::

    python benchmarks/bench_peers.py            # every installed peer (about a minute on 2 cores)
    python benchmarks/bench_peers.py --quick    # small sizes, a smoke run

Peers (``pip install "balancer[bench]"`` installs kornia and imbalanced-learn; a missing peer is
skipped with a note):

- kornia's softmax ``focal_loss`` vs ``losses.FocalLoss`` at (65536, 10) and (16384, 1000),
  ``gamma=2``, no alpha, both with ``reduction="sum"`` (kornia's ``"mean"`` divides by N * C,
  ours by N; ``"sum"`` is the same number), forward + backward on CPU. Goal: ours <= kornia.
- kornia's ``binary_focal_loss_with_logits`` vs ``losses.BinaryFocalLoss`` at (16384, 1000).
- MONAI's ``FocalLoss`` (softmax form, without and with per-class ``alpha``, and sigmoid form)
  vs ``losses.FocalLoss`` / ``BinaryFocalLoss``, the same formula (values and gradients
  compared), and MONAI's imbalance loss for
  classification, ``AUCMLoss`` (AUC-margin, Yuan et al. 2021, on sigmoid scores), vs
  ``losses.PosWeightedBCELoss`` on one imbalanced binary label (10% positives): different
  formulas for the same problem, so only the speed ratio is printed. (MONAI's other imbalance
  loss, ``AsymmetricUnifiedFocalLoss``, is a Dice + focal loss over segmentation masks, with no
  classification counterpart here.) If MONAI is installed.
- imbalanced-learn's ``RandomOverSampler`` vs ``balancer.BalancedBatchSampler`` for one balanced
  epoch over N long-tailed labels (C classes, imbalance 100): the oversampler's
  ``fit_resample`` of an index column, then a seeded shuffle and batches of 256 as a training
  loop would need them; ours iterates its epoch through the public sampler API. Both produce
  every class ``n_max`` times.

Each time is the fastest of three back-to-back calls; a ratio is the median over rounds of
``t_ours / t_peer`` measured in the same round (rounds alternate the order), so a shared machine's
drifts hit both alike. Values and gradients are compared once per loss pair and the largest
difference printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import losses
from balancer import BalancedBatchSampler

FOCAL_SHAPES = [(65536, 10), (16384, 1000)]
QUICK_FOCAL_SHAPES = [(8192, 10), (2048, 1000)]


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def fwd_bwd_time(fn: Callable, logits: torch.Tensor, target: torch.Tensor, inner: int = 3) -> float:
    best = float("inf")
    for _ in range(inner):
        logits.grad = None
        start = time.perf_counter()
        fn(logits, target).backward()
        best = min(best, time.perf_counter() - start)
    return best


def ratio_rounds(ours: Callable[[], float], peer: Callable[[], float], rounds: int) -> float:
    """Median over rounds of t_ours / t_peer, the order alternating between rounds."""
    ratios = []
    for i in range(rounds):
        if i % 2:
            t_peer, t_ours = peer(), ours()
        else:
            t_ours, t_peer = ours(), peer()
        ratios.append(t_ours / t_peer)
    return statistics.median(ratios)


def max_difference(ours: Callable, peer: Callable, logits: torch.Tensor, target) -> tuple:
    a = logits.detach().clone().requires_grad_()
    b = logits.detach().clone().requires_grad_()
    va, vb = ours(a, target), peer(b, target)
    va.backward()
    vb.backward()
    return (va - vb).abs().item(), (a.grad - b.grad).abs().max().item()


def compare_losses(title: str, ours: Callable, peer: Callable, logits, target, rounds: int,
                   goal: float | None = None, same_formula: bool = True) -> None:
    for fn in (ours, peer):  # warm-up
        fwd_bwd_time(fn, logits, target)
    r = ratio_rounds(lambda: fwd_bwd_time(ours, logits, target),
                     lambda: fwd_bwd_time(peer, logits, target), rounds)
    if same_formula:
        dv, dg = max_difference(ours, peer, logits, target)
        agreement = f"|value diff| {dv:.1e}, max |grad diff| {dg:.1e}"
    else:
        agreement = "different formulas: values not compared"
    verdict = "" if goal is None else ("  ok" if r <= goal else f"  MISS (goal <= {goal})")
    print(f"{title:58s} ours/peer {r:5.2f}  ({agreement}){verdict}")


def bench_kornia(shapes, rounds: int) -> None:
    from kornia.losses import binary_focal_loss_with_logits, focal_loss

    ours = losses.FocalLoss(gamma=2.0, reduction="sum")

    def peer(z, y):
        return focal_loss(z, y, alpha=None, gamma=2.0, reduction="sum")

    for n, c in shapes:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(n, c, generator=g).requires_grad_()
        target = torch.randint(0, c, (n,), generator=g)
        compare_losses(f"FocalLoss vs kornia focal_loss, N={n}, C={c}", ours, peer, logits,
                       target, rounds, goal=1.0)
    n, c = shapes[-1]
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(n, c, generator=g).requires_grad_()
    binary = (torch.rand(n, c, generator=g) < 0.1).float()
    ours_b = losses.BinaryFocalLoss(gamma=2.0, alpha=0.25)

    def peer_b(z, t):
        return binary_focal_loss_with_logits(z, t, alpha=0.25, gamma=2.0, reduction="mean")

    compare_losses(f"BinaryFocalLoss vs kornia binary_focal_loss_with_logits, N={n}, C={c}",
                   ours_b, peer_b, logits, binary, rounds)


def bench_monai(shapes, rounds: int) -> None:
    from monai.losses import FocalLoss as MonaiFocal

    n, c = shapes[-1]
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(n, c, generator=g).requires_grad_()
    target = torch.randint(0, c, (n,), generator=g)
    # MONAI reads (N, C) as a batch of N images with C channels and no spatial dimension,
    # which its softmax form does not take as N samples: give it one spatial voxel per sample.
    peer_softmax = MonaiFocal(gamma=2.0, use_softmax=True, to_onehot_y=True, reduction="sum")
    compare_losses(f"FocalLoss vs MONAI FocalLoss(use_softmax=True), N={n}, C={c}",
                   losses.FocalLoss(gamma=2.0, reduction="sum"),
                   lambda z, y: peer_softmax(z.unsqueeze(-1), y.view(-1, 1, 1)), logits, target,
                   rounds)
    # Class weights (long-tailed: the rarest class weighs 100x the most frequent), the
    # imbalance setting of a focal loss: MONAI's alpha sequence is ours.
    alpha = torch.logspace(-2, 0, c).tolist()
    peer_alpha = MonaiFocal(gamma=2.0, alpha=alpha, use_softmax=True, to_onehot_y=True,
                            reduction="sum")
    compare_losses(f"FocalLoss(alpha) vs MONAI FocalLoss(alpha), N={n}, C={c}",
                   losses.FocalLoss(gamma=2.0, alpha=alpha, reduction="sum"),
                   lambda z, y: peer_alpha(z.unsqueeze(-1), y.view(-1, 1, 1)), logits, target,
                   rounds)
    binary = (torch.rand(n, c, generator=g) < 0.1).float()
    peer_sigmoid = MonaiFocal(gamma=2.0, reduction="mean")
    compare_losses(f"BinaryFocalLoss vs MONAI FocalLoss (sigmoid), N={n}, C={c}",
                   losses.BinaryFocalLoss(gamma=2.0), peer_sigmoid, logits, binary, rounds)
    bench_monai_aucm(n * 16, rounds)


def bench_monai_aucm(n: int, rounds: int) -> None:
    from monai.losses import AUCMLoss

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(n, 1, generator=g).requires_grad_()
    target = (torch.rand(n, 1, generator=g) < 0.1).float()
    positives = int(target.sum())
    ours = losses.PosWeightedBCELoss([positives], num_samples=n)
    peer = AUCMLoss(imratio=positives / n)
    compare_losses(f"PosWeightedBCELoss vs MONAI AUCMLoss (imbalance), N={n}, 1 label", ours,
                   lambda z, t: peer(torch.sigmoid(z), t), logits, target, rounds,
                   same_formula=False)


def long_tailed_labels(num_samples: int, num_classes: int, ratio: float = 100.0) -> np.ndarray:
    decay = np.exp(-np.log(ratio) * np.arange(num_classes) / (num_classes - 1))
    counts = np.maximum(1, np.round(decay / decay.sum() * num_samples)).astype(np.int64)
    counts[0] += num_samples - counts.sum()
    labels = np.repeat(np.arange(num_classes), counts)
    np.random.default_rng(0).shuffle(labels)
    return labels


def bench_imblearn(num_samples: int, num_classes: int, batch_size: int, rounds: int) -> None:
    from imblearn.over_sampling import RandomOverSampler

    labels = long_tailed_labels(num_samples, num_classes)
    n_max = int(np.bincount(labels).max())
    sampler = BalancedBatchSampler(labels, batch_size=batch_size, seed=0)

    def ours() -> float:
        start = time.perf_counter()
        sampler.set_epoch(0)
        count = sum(len(batch) for batch in sampler)
        elapsed = time.perf_counter() - start
        assert count == num_classes * n_max, count
        return elapsed

    def peer() -> float:
        start = time.perf_counter()
        ros = RandomOverSampler(random_state=0)
        index, _ = ros.fit_resample(np.arange(num_samples).reshape(-1, 1), labels)
        order = np.random.default_rng(0).permutation(index.ravel())
        batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
        elapsed = time.perf_counter() - start
        assert sum(len(b) for b in batches) == num_classes * n_max
        return elapsed

    r = ratio_rounds(ours, peer, rounds)
    print(f"{'BalancedBatchSampler vs imblearn RandomOverSampler, one epoch':58s} ours/peer {r:5.2f}"
          f"  (N={num_samples:,}, C={num_classes}, {num_classes * n_max:,} indices, "
          f"batch {batch_size})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds per comparison")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    shapes = QUICK_FOCAL_SHAPES if args.quick else FOCAL_SHAPES
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; ratios < 1: ours faster")
    for package, run in [
        ("kornia", lambda: bench_kornia(shapes, rounds)),
        ("monai", lambda: bench_monai(shapes, rounds)),
        ("imblearn", lambda: bench_imblearn(100_000 if args.quick else 2_000_000,
                                            100 if args.quick else 1000, 256,
                                            min(rounds, 3))),
    ]:
        if not installed(package):
            print(f"{package}: not installed, skipped (pip install \"balancer[bench]\" for "
                  "kornia and imbalanced-learn; MONAI is not in that extra)")
            continue
        run()


if __name__ == "__main__":
    main()
