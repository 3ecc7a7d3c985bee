"""Per-class vectors and devices, sequences in the functional forms, TypeError vs ValueError,
integer target dtypes, per-class values.

Device mismatches are tested on CPU with the ``meta`` device as the "other" device: a per-class
tensor on CPU next to meta logits must raise, exactly as a CPU tensor next to CUDA logits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import losses
from losses import functional as LF

COUNTS = [50.0, 10.0, 5.0, 2.0]
W = [0.5, 1.0, 2.0, 1.5]


def meta_batch(c=4):
    return torch.randn(3, c, device="meta"), torch.zeros(3, dtype=torch.long, device="meta")


# --------------------------------------------------------------------------- devices

FUNCTIONAL_DEVICE_CASES = {
    "nll_weight": (lambda z, y, v: LF.weighted_nll_loss(z, y, v), "weight", "log_probs"),
    "ce_weight": (lambda z, y, v: LF.weighted_cross_entropy(z, y, v), "weight", "logits"),
    "focal_alpha": (lambda z, y, v: LF.focal_loss(z, y, v), "alpha", "logits"),
    "margin_weight": (lambda z, y, v: LF.margin_loss(z, y, weight=v), "weight", "scores"),
    "margin_class_margins": (
        lambda z, y, v: LF.margin_loss(z, y, class_margins=v), "class_margins", "scores"
    ),
    "ldam_counts": (lambda z, y, v: LF.ldam_loss(z, y, v), "counts", "logits"),
    "ldam_weight": (lambda z, y, v: LF.ldam_loss(z, y, COUNTS, weight=v), "weight", "logits"),
    "la_prior": (
        lambda z, y, v: LF.logit_adjusted_cross_entropy(z, y, v), "prior_or_counts", "logits"
    ),
    "la_weight": (
        lambda z, y, v: LF.logit_adjusted_cross_entropy(z, y, COUNTS, weight=v), "weight", "logits"
    ),
    "posthoc_prior": (lambda z, y, v: LF.posthoc_adjust(z, v), "prior_or_counts", "logits"),
}


@pytest.mark.parametrize("case", sorted(FUNCTIONAL_DEVICE_CASES))
def test_functional_raises_on_per_class_tensor_on_other_device(case):
    fn, name, logits_name = FUNCTIONAL_DEVICE_CASES[case]
    z, y = meta_batch()
    with pytest.raises(
        ValueError,
        match=rf"{name} is on cpu but {logits_name} is on meta; .*\.to\(device\).*on meta",
    ):
        fn(z, y, torch.tensor(COUNTS))


@pytest.mark.parametrize("case", sorted(FUNCTIONAL_DEVICE_CASES))
def test_functional_builds_sequences_on_the_logits_device(case):
    fn, _, _ = FUNCTIONAL_DEVICE_CASES[case]
    z, y = meta_batch()
    assert fn(z, y, COUNTS).device.type == "meta"


def _margins_on_meta(loss):
    loss.margins = loss.margins.to("meta")  # only the weight is left behind
    return loss


MODULE_DEVICE_CASES = {
    "nll": (lambda: losses.WeightedNLLLoss(W), "weight", "log_probs"),
    "ce": (lambda: losses.WeightedCrossEntropyLoss(W), "weight", "logits"),
    "focal": (lambda: losses.FocalLoss(alpha=W), "alpha", "logits"),
    "margin_weight": (lambda: losses.MarginLoss(weight=W), "weight", "scores"),
    "margin_class_margins": (lambda: losses.MarginLoss(class_margins=W), "class_margins", "scores"),
    "ldam": (lambda: losses.LDAMLoss(COUNTS), "margins", "logits"),
    "ldam_weight": (lambda: _margins_on_meta(losses.LDAMLoss(COUNTS, weight=W)), "weight", "logits"),
    "logit_adjusted": (lambda: losses.LogitAdjustedLoss(COUNTS), "log_prior", "logits"),
}


@pytest.mark.parametrize("case", sorted(MODULE_DEVICE_CASES))
def test_module_raises_when_not_moved_to_the_logits_device(case):
    make, name, logits_name = MODULE_DEVICE_CASES[case]
    loss = make()
    z, y = meta_batch()
    with pytest.raises(
        ValueError,
        match=rf"{name} is on cpu but {logits_name} is on meta; .*move the loss module with "
        r"\.to\(device\)",
    ):
        loss(z, y)
    assert loss.to("meta")(z, y).device.type == "meta"


def test_posthoc_adjust_module_raises_on_other_device():
    loss = losses.LogitAdjustedLoss(COUNTS)
    with pytest.raises(ValueError, match=r"log_prior is on cpu but logits is on meta"):
        loss.posthoc_adjust(torch.randn(2, 4, device="meta"))


def test_sequence_value_checks_still_run_for_device_logits():
    z, y = meta_batch()
    with pytest.raises(ValueError, match=r"prior_or_counts has 0 for class 1"):
        LF.logit_adjusted_cross_entropy(z, y, [3.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"counts has 0 for class 2"):
        LF.ldam_loss(z, y, [3.0, 1.0, 0.0, 1.0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "name",
    ["nll", "ce", "ce_samples", "focal", "binary_focal", "hinge", "log", "sqsq", "hinge_all",
     "hinge_all_class_margins", "ldam", "ldam_weight", "logit_adjusted"],
)
def test_modules_do_not_sync_with_the_host_on_cuda(name):
    make = {
        "nll": lambda: losses.WeightedNLLLoss(W),
        "ce": lambda: losses.WeightedCrossEntropyLoss(W),
        "ce_samples": lambda: losses.WeightedCrossEntropyLoss(W, normalization="samples"),
        "focal": lambda: losses.FocalLoss(gamma=0.5, alpha=W),
        "binary_focal": lambda: losses.BinaryFocalLoss(gamma=2.0, alpha=0.25),
        "hinge": lambda: losses.MarginLoss(kind="hinge", weight=W),
        "log": lambda: losses.MarginLoss(kind="log"),
        "sqsq": lambda: losses.MarginLoss(kind="square_square", class_margins=W),
        "hinge_all": lambda: losses.MarginLoss(kind="hinge", against="all"),
        "hinge_all_class_margins": lambda: losses.MarginLoss(
            kind="hinge", against="all", class_margins=W
        ),
        "ldam": lambda: losses.LDAMLoss(COUNTS),
        "ldam_weight": lambda: losses.LDAMLoss(COUNTS, weight=W),
        "logit_adjusted": lambda: losses.LogitAdjustedLoss(COUNTS, weight=W),
    }[name]
    loss = make().to("cuda")
    z = torch.randn(16, 4, device="cuda", requires_grad=True)
    y = torch.randint(0, 4, (16,), device="cuda")
    y[0] = -100
    if name == "binary_focal":
        y = torch.rand(16, 4, device="cuda").round()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for reduction in ("mean", "sum", "none"):
            loss.reduction = reduction
            out = loss(z, y)
            out.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- sequences


@pytest.mark.parametrize(
    "fn",
    [
        lambda z, y, w: LF.weighted_cross_entropy(z, y, w),
        lambda z, y, w: LF.weighted_nll_loss(z.log_softmax(1), y, w),
        lambda z, y, w: LF.focal_loss(z, y, w),
        lambda z, y, w: LF.margin_loss(z, y, weight=w),
        lambda z, y, w: LF.margin_loss(z, y, class_margins=w),
        lambda z, y, w: LF.ldam_loss(z, y, [*COUNTS, 1.0], weight=w),
        lambda z, y, w: LF.logit_adjusted_cross_entropy(z, y, [*COUNTS, 1.0], weight=w),
    ],
    ids=["ce", "nll", "focal", "margin_weight", "class_margins", "ldam", "logit_adjusted"],
)
def test_functional_accepts_sequences_for_per_class_vectors(fn):
    z, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, -100])
    w = [1.0, 2, 3, 4, 5]
    assert_close(fn(z, y, w), fn(z, y, torch.tensor(w)))
    assert_close(fn(z, y, tuple(w)), fn(z, y, torch.tensor(w)))


def test_functional_sequence_of_wrong_length_names_the_argument():
    with pytest.raises(ValueError, match=r"weight should have one entry per class \(C=5\).*length 2"):
        LF.weighted_cross_entropy(torch.randn(2, 5), torch.tensor([0, 1]), [1.0, 2.0])


def test_functional_rejects_a_string_weight_with_type_error():
    with pytest.raises(TypeError, match=r"alpha should be a 1-D tensor or sequence.*str"):
        LF.focal_loss(torch.randn(2, 5), torch.tensor([0, 1]), "1,2,3,4,5")


# --------------------------------------------------------------------------- TypeError vs ValueError

Z, Y = torch.randn(2, 4), torch.tensor([0, 1])


def test_tau_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match=r"tau should be a finite float, but got tau='1' \(str\)"):
        LF.logit_adjusted_cross_entropy(Z, Y, COUNTS, tau="1")
    with pytest.raises(TypeError, match=r"tau=True \(bool\)"):
        losses.LogitAdjustedLoss(COUNTS, tau=True)


def test_tau_of_wrong_value_is_value_error():
    with pytest.raises(ValueError, match=r"tau should be finite, but got tau=nan"):
        LF.posthoc_adjust(Z, COUNTS, tau=float("nan"))


def test_margin_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match=r"margin should be a finite float, but got margin='1' \(str\)"):
        LF.margin_loss(Z, Y, margin="1")
    with pytest.raises(TypeError, match=r"margin='1' \(str\)"):
        losses.MarginLoss(margin="1")


def test_margin_of_wrong_value_is_value_error():
    with pytest.raises(ValueError, match=r"margin should be finite, but got margin=inf"):
        losses.MarginLoss(margin=float("inf"))


def test_scale_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match=r"scale should be a positive float, but got scale='30' \(str\)"):
        losses.LDAMLoss(COUNTS, scale="30")
    with pytest.raises(TypeError, match=r"scale='30' \(str\)"):
        LF.ldam_loss(Z, Y, COUNTS, scale="30")


def test_scale_of_wrong_value_is_value_error():
    with pytest.raises(ValueError, match=r"scale should be a positive, finite float, but got scale=0"):
        losses.LDAMLoss(COUNTS, scale=0)
    with pytest.raises(ValueError, match=r"scale=-1.0"):
        LF.ldam_loss(Z, Y, COUNTS, scale=-1.0)


def test_max_margin_of_wrong_type_is_type_error():
    with pytest.raises(
        TypeError, match=r"max_margin should be a positive float, but got max_margin='0.5' \(str\)"
    ):
        losses.LDAMLoss(COUNTS, max_margin="0.5")


def test_max_margin_of_wrong_value_is_value_error():
    with pytest.raises(ValueError, match=r"max_margin should be a positive, finite float.*=0"):
        LF.ldam_loss(Z, Y, COUNTS, max_margin=0)


def test_binary_alpha_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match=r"alpha should be a float in \[0, 1\].*alpha='0.25' \(str\)"):
        LF.binary_focal_loss(Z, Z, alpha="0.25")
    with pytest.raises(TypeError, match=r"alpha='0.25' \(str\)"):
        losses.BinaryFocalLoss(alpha="0.25")


def test_binary_alpha_bool_is_rejected_by_the_functional_form_too():
    with pytest.raises(TypeError, match=r"alpha=True \(bool\)"):
        LF.binary_focal_loss(Z, Z, alpha=True)


def test_binary_alpha_out_of_range_is_value_error():
    with pytest.raises(ValueError, match=r"alpha should be in \[0, 1\].*alpha=1.5"):
        LF.binary_focal_loss(Z, Z, alpha=1.5)


def test_class_weights_beta_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match=r"beta should be a float in \[0, 1\), but got beta='0.9' \(str\)"):
        losses.class_weights([3, 1], "effective", beta="0.9")


def test_class_weights_beta_of_wrong_value_is_value_error():
    with pytest.raises(ValueError, match=r"beta should be in \[0, 1\), but got beta=1.0"):
        losses.class_weights([3, 1], "effective", beta=1.0)


def test_class_weights_num_classes_of_wrong_type_is_type_error():
    with pytest.raises(
        TypeError, match=r"num_classes should be a positive integer, but got num_classes=2.0 \(float\)"
    ):
        losses.class_weights([0, 1], num_classes=2.0)


def test_class_weights_num_classes_of_wrong_value_is_value_error():
    with pytest.raises(ValueError, match=r"num_classes should be >= 1, but got num_classes=0"):
        losses.class_weights([0, 1], num_classes=0)


def test_functional_ignore_index_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match=r"ignore_index should be an int, but got ignore_index=1.5 \(float\)"):
        LF.weighted_cross_entropy(Z, Y, ignore_index=1.5)
    with pytest.raises(TypeError, match=r"ignore_index=True \(bool\)"):
        LF.focal_loss(Z, Y, ignore_index=True)


def test_module_ignore_index_of_wrong_type_is_type_error():
    with pytest.raises(TypeError, match=r"ignore_index should be an int, but got ignore_index=1.5 \(float\)"):
        losses.FocalLoss(ignore_index=1.5)


# --------------------------------------------------------------------------- integer target dtypes

INDEX_LOSSES = {
    "nll_fn": lambda z, y, ii: LF.weighted_nll_loss(z.log_softmax(1), y, W, ignore_index=ii),
    "nll": lambda z, y, ii: losses.WeightedNLLLoss(W, ignore_index=ii)(z.log_softmax(1), y),
    "ce_fn": lambda z, y, ii: LF.weighted_cross_entropy(z, y, W, ignore_index=ii),
    "ce": lambda z, y, ii: losses.WeightedCrossEntropyLoss(W, ignore_index=ii)(z, y),
    "focal_fn": lambda z, y, ii: LF.focal_loss(z, y, gamma=1.5, ignore_index=ii),
    "focal": lambda z, y, ii: losses.FocalLoss(gamma=1.5, ignore_index=ii)(z, y),
    "focal_alpha_fn": lambda z, y, ii: LF.focal_loss(z, y, W, ignore_index=ii),
    "focal_alpha": lambda z, y, ii: losses.FocalLoss(alpha=W, ignore_index=ii)(z, y),
    "margin_fn": lambda z, y, ii: LF.margin_loss(z, y, weight=W, ignore_index=ii),
    "margin": lambda z, y, ii: losses.MarginLoss(weight=W, ignore_index=ii)(z, y),
    "margin_all_fn": lambda z, y, ii: LF.margin_loss(
        z, y, against="all", class_margins=W, ignore_index=ii
    ),
    "margin_all": lambda z, y, ii: losses.MarginLoss(against="all", ignore_index=ii)(z, y),
    "ldam_fn": lambda z, y, ii: LF.ldam_loss(z, y, COUNTS, weight=W, ignore_index=ii),
    "ldam": lambda z, y, ii: losses.LDAMLoss(COUNTS, ignore_index=ii)(z, y),
    "la_fn": lambda z, y, ii: LF.logit_adjusted_cross_entropy(z, y, COUNTS, ignore_index=ii),
    "la": lambda z, y, ii: losses.LogitAdjustedLoss(COUNTS, weight=W, ignore_index=ii)(z, y),
}
INT_DTYPES = [torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32,
              torch.uint64]


def _loss_and_grad(fn, z, y, ignore_index):
    z = z.detach().clone().requires_grad_(True)
    out = fn(z, y, ignore_index)
    out.sum().backward()
    return out.detach(), z.grad


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(INDEX_LOSSES))
def test_every_integer_target_dtype_gives_the_int64_result(name, dtype):
    """Values and gradients equal those of the same targets as int64, ignored entries included.
    A signed dtype holds ignore_index=-100; an unsigned one cannot, so it is given an
    ignore_index it can hold (its maximum for uint8, 200 for the wider ones)."""
    fn = INDEX_LOSSES[name]
    ignore_index = -100 if dtype.is_signed else (255 if dtype == torch.uint8 else 200)
    z = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    values = [0, 1, 2, 3, ignore_index, 1, 3]
    got = _loss_and_grad(fn, z, torch.tensor(values).to(dtype), ignore_index)
    want = _loss_and_grad(fn, z, torch.tensor(values), ignore_index)
    assert_close(got, want, rtol=0, atol=0)
    assert want[1][4].abs().sum() == 0  # the ignored row really is ignored


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8], ids=str)
@pytest.mark.parametrize("name", ["ce_fn", "focal", "margin_all_fn", "ldam", "la_fn"])
def test_integer_targets_of_dense_shape(name, dtype):
    fn = INDEX_LOSSES[name]
    z = torch.randn(2, 4, 3, 2, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([[[0, 1], [2, 3], [3, 0]], [[1, 1], [2, 2], [0, 3]]])
    assert_close(_loss_and_grad(fn, z, y.to(dtype), -100), _loss_and_grad(fn, z, y, -100))


@pytest.mark.parametrize("name", sorted(INDEX_LOSSES))
def test_uint8_target_is_compared_with_ignore_index_as_a_number(name):
    """uint8 cannot hold -100; compared in uint8, -100 would wrap to 156 and silently drop
    class 156. After the conversion to int64 156 is an out-of-range class index, as for int64."""
    fn = INDEX_LOSSES[name]
    z = torch.randn(3, 4)
    y = torch.tensor([0, 156, 1], dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"class index 156, outside \[0, 4\)"):
        fn(z, y, -100)
    # No entry equals -100, so nothing is ignored: the same result as int64 targets.
    y = torch.tensor([0, 3, 1], dtype=torch.uint8)
    assert_close(_loss_and_grad(fn, z, y, -100), _loss_and_grad(fn, z, y.long(), -100))


def test_int8_target_holds_a_negative_ignore_index():
    z = torch.randn(3, 4)
    y = torch.tensor([0, -100, 1], dtype=torch.int8)
    out = LF.focal_loss(z, y, reduction="none")
    assert out[1] == 0
    assert_close(out, LF.focal_loss(z, y.long(), reduction="none"))


def test_integer_target_of_another_dtype_compiles_fullgraph():
    """The conversion to int64 is a cast, not a branch on values: no graph break."""
    torch._dynamo.reset()
    z = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 255, 1], dtype=torch.uint8)

    def fn(z, y):
        return LF.focal_loss(z, y, gamma=0.5, ignore_index=255) + LF.ldam_loss(
            z, y, torch.tensor(COUNTS), ignore_index=255
        )

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    out = compiled(z, y)
    assert_close(out, fn(z, y.long()))
    assert_close(torch.autograd.grad(out, z)[0], torch.autograd.grad(fn(z, y.long()), z)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8], ids=str)
@pytest.mark.parametrize(
    "name", ["nll", "ce", "focal", "margin", "margin_all", "ldam", "la", "ldam_fn", "la_fn"]
)
def test_integer_targets_do_not_sync_with_the_host_on_cuda(name, dtype):
    cuda = torch.device("cuda")
    w, counts = torch.tensor(W, device=cuda), torch.tensor(COUNTS, device=cuda)
    make = {
        "nll": lambda: losses.WeightedNLLLoss(W, ignore_index=7),
        "ce": lambda: losses.WeightedCrossEntropyLoss(W, ignore_index=7),
        "focal": lambda: losses.FocalLoss(alpha=W, ignore_index=7),
        "margin": lambda: losses.MarginLoss(weight=W, ignore_index=7),
        "margin_all": lambda: losses.MarginLoss(against="all", class_margins=W, ignore_index=7),
        "ldam": lambda: losses.LDAMLoss(COUNTS, weight=W, ignore_index=7),
        "la": lambda: losses.LogitAdjustedLoss(COUNTS, ignore_index=7),
        "ldam_fn": lambda: lambda z, y: LF.ldam_loss(z, y, counts, weight=w, ignore_index=7),
        "la_fn": lambda: lambda z, y: LF.logit_adjusted_cross_entropy(z, y, counts, ignore_index=7),
    }[name]
    loss = make()
    if isinstance(loss, torch.nn.Module):
        loss = loss.to(cuda)
    z = torch.randn(16, 4, device=cuda, requires_grad=True)
    y = torch.randint(0, 4, (16,), device=cuda).to(dtype)
    y[0] = 7  # ignored; 7 fits every dtype
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = loss(z.log_softmax(1) if name == "nll" else z, y)
        out.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- per-class values

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("bad, shown", [(NAN, "nan"), (INF, "inf"), (-INF, "-inf")])
def test_ldam_rejects_non_finite_counts(bad, shown):
    counts = [50.0, bad, 5.0, 2.0]
    message = rf"counts should be finite, but got {shown} for class 1 .*positive, finite count"
    with pytest.raises(ValueError, match=message):
        losses.LDAMLoss(counts)
    with pytest.raises(ValueError, match=message):
        LF.ldam_loss(Z, Y, counts)  # a sequence: checked on the host
    with pytest.raises(ValueError, match=message):
        LF.ldam_loss(Z, Y, torch.tensor(counts))  # a CPU tensor: checked, it is free
    with pytest.raises(ValueError, match=message):
        LF.ldam_loss(*meta_batch(), counts)  # a sequence next to device logits: still host data


def test_logit_adjusted_rejects_non_finite_counts_naming_the_class():
    message = r"prior_or_counts should be finite, but got nan for class 2 "
    with pytest.raises(ValueError, match=message):
        losses.LogitAdjustedLoss([1.0, 2.0, NAN, 3.0])
    with pytest.raises(ValueError, match=r"prior_or_counts should be finite, but got inf for class 0"):
        LF.logit_adjusted_cross_entropy(Z, Y, [INF, 2.0, 1.0, 3.0])


def _weight_cases():
    """(call with a per-class vector v, its argument name) for every per-class weight."""
    return {
        "nll": (lambda z, y, v: LF.weighted_nll_loss(z, y, v), "weight"),
        "ce": (lambda z, y, v: LF.weighted_cross_entropy(z, y, v), "weight"),
        "focal": (lambda z, y, v: LF.focal_loss(z, y, v), "alpha"),
        "margin": (lambda z, y, v: LF.margin_loss(z, y, weight=v), "weight"),
        "ldam": (lambda z, y, v: LF.ldam_loss(z, y, COUNTS, weight=v), "weight"),
        "la": (lambda z, y, v: LF.logit_adjusted_cross_entropy(z, y, COUNTS, weight=v), "weight"),
    }


@pytest.mark.parametrize("bad, shown", [(-1.0, "-1.0"), (NAN, "nan"), (INF, "inf")])
@pytest.mark.parametrize("as_tensor", [False, True], ids=["sequence", "cpu_tensor"])
@pytest.mark.parametrize("case", sorted(_weight_cases()))
def test_functional_rejects_bad_per_class_weights_like_the_modules(case, as_tensor, bad, shown):
    fn, name = _weight_cases()[case]
    v = [1.0, bad, 1.0, 1.0]
    message = (rf"{name} should hold finite, non-negative values, one per class, but "
               rf"{name}\[1\] is {shown} \(1 such entry of 4\); give every class a finite value >= 0")
    with pytest.raises(ValueError, match=message):
        fn(Z, Y, torch.tensor(v) if as_tensor else v)


@pytest.mark.parametrize("case", sorted(_weight_cases()))
def test_functional_checks_sequences_on_the_host_for_device_logits(case):
    fn, name = _weight_cases()[case]
    with pytest.raises(ValueError, match=rf"{name}\[2\] is nan"):
        fn(*meta_batch(), [1.0, 1.0, NAN, 1.0])
    # A tensor on the logits' device is not read (that would be a host synchronisation).
    assert fn(*meta_batch(), torch.tensor([1.0, 1.0, NAN, 1.0], device="meta")).device.type == "meta"


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: losses.WeightedNLLLoss(v), "weight"),
        (lambda v: losses.WeightedCrossEntropyLoss(v), "weight"),
        (lambda v: losses.FocalLoss(alpha=v), "alpha"),
        (lambda v: losses.MarginLoss(weight=v), "weight"),
        (lambda v: losses.LDAMLoss(COUNTS, weight=v), "weight"),
        (lambda v: losses.LogitAdjustedLoss(COUNTS, weight=v), "weight"),
    ],
    ids=["nll", "ce", "focal", "margin", "ldam", "la"],
)
@pytest.mark.parametrize("bad, shown", [(-1.0, "-1.0"), (NAN, "nan"), (INF, "inf")])
def test_modules_reject_bad_per_class_weights(make, name, bad, shown):
    with pytest.raises(ValueError, match=rf"{name}\[3\] is {shown} \(1 such entry of 4\)"):
        make([1.0, 1.0, 1.0, bad])


@pytest.mark.parametrize("bad, shown", [(NAN, "nan"), (INF, "inf"), (-INF, "-inf")])
def test_class_margins_must_be_finite_but_may_be_negative(bad, shown):
    """Like the scalar margin (any finite float), per-class margins may be negative."""
    message = rf"class_margins should hold finite values, one per class, but class_margins\[0\] is {shown}"
    with pytest.raises(ValueError, match=message):
        LF.margin_loss(Z, Y, class_margins=[bad, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=message):
        losses.MarginLoss(class_margins=[bad, 1.0, 1.0, 1.0])
    negative = [-0.5, 1.0, 0.0, 1.0]
    assert_close(losses.MarginLoss(class_margins=negative)(Z, Y),
                 LF.margin_loss(Z, Y, class_margins=negative))


def test_error_counts_several_bad_entries():
    with pytest.raises(ValueError, match=r"weight\[0\] is -2.0 \(2 such entries of 4\)"):
        LF.weighted_cross_entropy(Z, Y, [-2.0, 1.0, NAN, 1.0])


# --------------------------------------------------------------------------- counts vs labels


@pytest.mark.parametrize(
    "labels",
    [torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1], dtype=torch.int32), [0, 1, 1, 0],
     np.array([1, 0, 1])],
    ids=["tensor", "int32", "list", "numpy"],
)
def test_class_weights_of_labels_without_num_classes_says_how_to_pass_labels(labels):
    """Without num_classes the vector is read as counts; the error says how to pass labels."""
    with pytest.raises(ValueError, match=r"class \d has a count of 0.*If counts_or_labels holds "
                       r"one class label per sample .* pass num_classes=C"):
        losses.class_weights(labels)
    assert losses.class_weights(labels, num_classes=2).shape == (2,)


def test_class_weights_zero_float_count_has_no_labels_hint():
    """Float counts cannot be labels: the error keeps to the zero count."""
    with pytest.raises(ValueError, match=r"class 1 has a count of 0") as info:
        losses.class_weights([3.0, 0.0, 1.0])
    assert "num_classes" not in str(info.value)


@pytest.mark.parametrize("bad, shown", [(-1.0, "-1.0"), (NAN, "nan"), (INF, "inf"), (-INF, "-inf")])
def test_long_per_class_vectors_are_checked_too(bad, shown):
    """Vectors longer than 64 take the tensor-reduction path of the check, shorter ones a
    Python pass: both find the same entry."""
    z, y = torch.randn(3, 100), torch.tensor([0, 50, 99])
    w = [1.0] * 100
    w[70] = bad
    with pytest.raises(ValueError, match=rf"weight\[70\] is {shown} \(1 such entry of 100\)"):
        LF.weighted_cross_entropy(z, y, w)
    with pytest.raises(ValueError, match=rf"counts should be finite, but got {shown} for class 70"
                       if bad != -1.0 else r"counts has -1 for class 70"):
        LF.ldam_loss(z, y, [x + 1.0 if x == 1.0 else x for x in w])
    w[70] = 2.0
    assert torch.isfinite(LF.weighted_cross_entropy(z, y, w))


def test_numpy_scalar_settings_are_taken_as_python_numbers():
    """Settings read from numpy arrays (np.float32, np.int64) give the same loss as Python
    numbers; numpy and Python bools stay refused."""
    import numpy as np

    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 4.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    pairs = [
        (losses.AsymmetricLoss(gamma_neg=np.float32(2.0), clip=np.float64(0.05)),
         losses.AsymmetricLoss(gamma_neg=2.0, clip=0.05)),
        (losses.PosWeightedBCELoss([3, 4, 2], num_samples=np.int64(10)),
         losses.PosWeightedBCELoss([3, 4, 2], num_samples=10)),
        (losses.BinaryFocalLoss(gamma=np.float32(2.0), alpha=np.float32(0.25)),
         losses.BinaryFocalLoss(gamma=2.0, alpha=0.25)),
    ]
    for numpy_made, python_made in pairs:
        torch.testing.assert_close(numpy_made(logits, target), python_made(logits, target))
    index_logits, index_target = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), \
        torch.tensor([0, 2, 1, 2])
    torch.testing.assert_close(
        losses.FocalLoss(gamma=np.float32(2.0))(index_logits, index_target),
        losses.FocalLoss(gamma=2.0)(index_logits, index_target))
    for bad in (True, np.bool_(True)):
        with pytest.raises(TypeError, match="gamma should be a non-negative float"):
            losses.FocalLoss(gamma=bad)
