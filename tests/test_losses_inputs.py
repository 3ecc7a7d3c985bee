"""Per-class vectors and devices, sequences in the functional forms, TypeError vs ValueError.

Device mismatches are tested on CPU with the ``meta`` device as the "other" device: a per-class
tensor on CPU next to meta logits must raise, exactly as a CPU tensor next to CUDA logits.
"""

from __future__ import annotations

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
