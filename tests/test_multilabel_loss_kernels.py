"""The chunked CPU kernels of the multi-label losses give the plain formulas' values and
gradients whatever the chunking: 1 to 3 intra-op threads (a chunk grows with them), chunks
shrunk to a part of a row, the real chunk sizes, non-contiguous inputs, and a second backward
through the retained graph."""

from __future__ import annotations

import pytest
import torch
from helpers.loss_cases import (
    LOSS_NAMES,
    REDUCTIONS,
    assert_kernel_agrees,
    intra_op_threads,
    loss_table,
    random_inputs,
    run_loss,
)

from losses import _kernels as K


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [(3, 5), (40, 14), (300, 1), (2, 700)],
                         ids=["few_rows", "many_rows", "L1", "wide"])
def test_kernels_agree_with_the_plain_formulas_at_1_2_3_threads(threads, shape, monkeypatch):
    """Held: with T threads a chunk is 2 T times _CHUNK_BYTES. Shrunk here to 1 KB so that
    small shapes span many chunks at every thread count (and a chunk holds part of a row of
    the wide shape), every loss and reduction, float64 to fp16, agrees with the plain
    formulas, and a second backward through the retained graph gives the same gradient."""
    monkeypatch.setattr(K, "_CHUNK_BYTES", 1024)
    with intra_op_threads(threads):
        assert K._chunk_bytes() == (1024 if threads == 1 else 1024 * 2 * threads)
        z, t = random_inputs(*shape, seed=threads * 100 + shape[0])
        for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
            zd, td = z.to(dtype), t.to(dtype)
            for name, fn in loss_table(shape[1]).items():
                for reduction in REDUCTIONS:
                    fast = run_loss(fn, zd, td, reduction, True)
                    plain = run_loss(fn, zd, td, reduction, False)
                    if dtype in (torch.bfloat16, torch.float16):
                        assert fast[0].dtype == torch.float32, (name, "computed in float32")
                    assert_kernel_agrees(fast, plain, dtype)


@pytest.mark.parametrize("threads", [2, 3])
def test_real_chunk_sizes_with_several_threads_agree_and_stay_finite(threads):
    """The real chunk sizes (512 KB, 768 KB) over inputs of several chunks, with extreme
    logits in some rows only, agree with the plain formulas, and the fp16 loss of +-6e4 logits
    is finite (held). Broke: a second backward through the retained graph gave another
    gradient than the first (see the next test)."""
    with intra_op_threads(threads):
        for shape in ((15000, 14), (200000, 1)):
            z, t = random_inputs(*shape, seed=threads)
            z[7, 0], z[-3, -1] = 1e4, -1e4  # one in the first block, one in the last
            z32, t32 = z.float(), t.float()
            for fn in loss_table(shape[1]).values():
                for reduction in ("none", "mean"):
                    assert_kernel_agrees(run_loss(fn, z32, t32, reduction, True),
                           run_loss(fn, z32, t32, reduction, False), torch.float32)
            half = torch.full((4096, 14), 6e4, dtype=torch.float16)
            half[::2] = -6e4
            target = torch.zeros(4096, 14, dtype=torch.float16)
            target[1::3] = 1.0
            for name, fn in loss_table(14).items():
                x = half.clone().requires_grad_()
                out = fn(x, target, "mean")
                out.backward()
                assert out.dtype == torch.float32 and torch.isfinite(out), name
                assert torch.isfinite(x.grad).all(), name


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_second_backward_equals_the_first_with_an_extreme_logit_in_one_block(name,
                                                                                monkeypatch):
    """Broke (design note: "results never depend on how often backward runs"): a reduced loss
    computes each block without the log-sigmoid's floor clamp and redoes only the blocks whose
    sum is not finite, while the second backward's recomputation clamped every block once the
    logits reached below the floor; the clamp's (log s + u) - u rounded differently, so ASL's
    two gradients (which use the log-sigmoid itself when gamma_pos > 0 or clip = 0) differed in
    their last bits. Now clamping changes nothing above the floor."""
    monkeypatch.setattr(K, "_CHUNK_BYTES", 256)  # blocks of 4 rows of 16 float32
    z, t = random_inputs(40, 16, seed=11)
    z[37, 3] = -120.0  # in the last block only
    for reduction in ("mean", "sum"):
        value, first, second = run_loss(loss_table(16)[name], z.float(), t.float(), reduction, True)
        assert torch.isfinite(value)
        assert torch.equal(first, second), reduction


@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_non_contiguous_inputs_give_the_contiguous_results(layout):
    """Held: non-contiguous logits and targets (a column-major copy, a slice with a step)
    give exactly the losses and gradients of their contiguous copies, on the kernel path."""
    z, t = random_inputs(50, 6, seed=3)
    if layout == "transposed":
        zn, tn = z.t().contiguous().t(), t.t().contiguous().t()
    else:
        zn = torch.cat([z, z + 1], dim=1)[:, ::2]
        tn = torch.cat([t, 1 - t], dim=1)[:, ::2]
        z, t = zn.contiguous(), tn.contiguous()
    assert not zn.is_contiguous() and not tn.is_contiguous()
    for name, fn in loss_table(6).items():
        for reduction in REDUCTIONS:
            got = run_loss(fn, zn.float(), tn.float(), reduction, True)
            want = run_loss(fn, z.float(), t.float(), reduction, True)
            for a, b in zip(got, want, strict=True):
                assert torch.equal(a, b), (name, reduction)
