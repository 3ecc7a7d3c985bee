"""What one fused elementwise kernel would buy the multi-label losses on CPU: a probe, not a
product path.

    .venv/bin/python benchmarks/bench_fused_probe.py                 # (65536, 14), torch's threads
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fused_probe.py

The eager CPU kernels of ``AsymmetricLoss`` and ``DistributionBalancedLoss`` compute the loss and
its closed-form gradient block by block from some twenty elementwise passes (see
``losses/_sigmoid_kernels.py``); ``F.binary_cross_entropy_with_logits`` is a handful of fused
ones. This script writes the same closed forms (the losses' default settings, a summed loss and
the gradient for a unit upstream gradient, no autograd) as plain tensor code and hands them to
``torch.compile`` (inductor's C++ backend, which fuses them into one loop), then times, in one
run and in alternating order:

- ``bce``: forward + backward of ``F.binary_cross_entropy_with_logits`` (the baseline, 1.00);
- ``<loss> eager``: forward + backward of the shipped module;
- ``<loss> fused probe``: one call of the compiled closed form;
- ``<loss> compiled module``: ``torch.compile`` of the shipped module (its plain autograd
  formula, the path every loss takes under ``torch.compile``).

Every figure is the median over rounds of the ratio to ``bce`` in the same round, each time the
fastest of three calls. The probes leave out what the shipped kernels add for extreme logits
(the floor clamp below -87, the recomputation of a non-finite block), so they are a bound on
what fusion gives, not a replacement. Before timing, the probe's loss and gradient are checked against the
shipped module's (so it computes the same loss), and the script stops if they differ. It needs
a C++ compiler (inductor) and about 10-30 s of compilation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import losses

CLIP, GAMMA_NEG = 0.05, 4.0  # AsymmetricLoss defaults
ALPHA, BETA, MU, KAPPA, LAM = 0.1, 10.0, 0.2, 0.05, 2.0  # DistributionBalancedLoss defaults


def asl_closed_form(z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ASL (gamma_neg=4, gamma_pos=0, clip=0.05): summed loss and its gradient."""
    s = torch.sigmoid(z)
    p_m = (s - CLIP).clamp_min(0.0)
    one_minus = 1.0 - p_m
    log_neg = torch.log(one_minus)
    p3 = p_m * p_m * p_m
    loss = -torch.lerp(p3 * p_m * log_neg, torch.log(s), t)
    g_neg = (p3 * p_m / one_minus - GAMMA_NEG * p3 * log_neg) * (s - s * s)
    return loss.sum(), torch.lerp(g_neg, s - 1.0, t)


def db_closed_form(z: torch.Tensor, t: torch.Tensor, inv_counts: torch.Tensor,
                   shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DB (the paper's settings): summed loss and its gradient."""
    r = inv_counts / (t @ inv_counts).clamp_min(torch.finfo(z.dtype).tiny).unsqueeze(1)
    w = ALPHA + torch.sigmoid((BETA * (r - MU)).clamp_max(50.0))
    u = z + shift
    s, s_lam = torch.sigmoid(u), torch.sigmoid(LAM * u)
    # softplus(-u) = -log sigma(u); softplus(lam u) / lam = u - log sigma(lam u) / lam
    loss = w * torch.lerp(u - torch.log(s_lam) / LAM, -torch.log(s), t)
    grad = w * torch.lerp(s_lam, s - 1.0, t)
    return loss.sum(), grad


def batch(n: int, labels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and 0/1 targets at long-tailed label rates (0.3 down to 0.001)."""
    g = torch.Generator().manual_seed(seed)
    rates = torch.logspace(-0.5229, -3, labels)  # 0.3 ... 0.001
    return torch.randn(n, labels, generator=g), (torch.rand(n, labels, generator=g) < rates).float()


def fastest(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(65536, 14), metavar=("N", "L"))
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    n, labels = args.shape
    z, t = batch(n, labels, 0)
    x = z.clone().requires_grad_()
    counts = t.sum(0).clamp(1, n - 1)
    inv_counts = 1.0 / counts
    shift = (KAPPA / LAM) * (counts.double().log() - (n - counts.double()).log()).float()
    modules = {"asl": losses.AsymmetricLoss(reduction="sum"),
               "db": losses.DistributionBalancedLoss(counts, num_samples=n, reduction="sum")}
    probes = {"asl": torch.compile(asl_closed_form),
              "db": torch.compile(lambda a, b: db_closed_form(a, b, inv_counts, shift))}
    compiled = {name: torch.compile(module) for name, module in modules.items()}

    def backward_of(fn):
        def run():
            x.grad = None
            fn(x, t).backward()
        return run

    calls = {"bce": backward_of(lambda a, b: F.binary_cross_entropy_with_logits(a, b,
                                                                                reduction="sum"))}
    started = time.perf_counter()
    for name, module in modules.items():
        value, grad = probes[name](z, t)  # compiles
        x.grad = None
        reference = module(x, t)
        reference.backward()
        torch.testing.assert_close(value, reference.detach(), rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(grad, x.grad, rtol=1e-3, atol=1e-5)
        calls[f"{name} eager"] = backward_of(module)
        calls[f"{name} fused probe"] = lambda p=probes[name]: p(z, t)
        calls[f"{name} compiled module"] = backward_of(compiled[name])
    for call in calls.values():  # warm-up, and the compiled modules' compilation
        call()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, shape ({n}, {labels}); "
          f"probes checked against the modules; compilation and warm-up "
          f"{time.perf_counter() - started:.1f} s")
    ratios: dict[str, list[float]] = {name: [] for name in calls}
    order = torch.Generator().manual_seed(1)
    names = list(calls)
    for _ in range(args.rounds):
        times = {}
        for i in torch.randperm(len(names), generator=order).tolist():
            times[names[i]] = fastest(calls[names[i]])
        for name in names:
            ratios[name].append(times[name] / times["bce"])
    for name in names:
        print(f"{name:24s} {statistics.median(ratios[name]):6.2f}x bce")


if __name__ == "__main__":
    main()
