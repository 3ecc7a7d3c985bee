"""Input checks shared by every loss: one place that turns accepted inputs into one canonical form.

Design note (value checks and host synchronisation)
---------------------------------------------------
Shape, dtype and setting checks read only metadata and are always done. Checks that need the
*values* of a tensor (is every target index inside ``[0, C)``?) are different: on an accelerator,
reading a value back to Python waits for every queued kernel (a host synchronisation), and under
``torch.compile`` a branch on a value breaks the graph. So value checks run only in eager mode on
CPU tensors, where they cost one cheap reduction and no synchronisation; elsewhere they are skipped
and an out-of-range index surfaces as the device-side assertion of ``gather``. Run a few CPU steps
(or set ``CUDA_LAUNCH_BLOCKING=1``) to get the readable message.

Targets of any integer dtype are accepted and converted to int64 in one place
(:func:`check_index_target`), before any comparison with ``ignore_index``: compared in its own
dtype, a uint8 target would wrap ``ignore_index=-100`` to 156 and silently ignore class 156. The
conversion is an elementwise cast on the target's device: no synchronisation, no data-dependent
shape, and no copy for int64 targets.

Per-class values (weights and alpha: finite and >= 0; margins: finite, of either sign like the
scalar ``margin``; counts and priors: finite and > 0)
follow the same rule: a Python sequence (or numpy array) is host data and is checked before it is
copied to the logits' device (except under ``torch.compile``, where a branch on a value would
break the graph); a tensor is checked where that is free (eager mode, CPU); the loss modules
check theirs once, at construction.

Per-class tensors (weight, alpha, margins, log-prior) are never moved behind the caller's back:
a copy to the logits' device on every call would be a host synchronisation. A tensor on another
device raises (as torch's own losses do); a Python sequence is turned into a tensor on the logits'
device, which is one host-to-device copy per call (pass a tensor already on that device to avoid
it).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")
NORMALIZATIONS = ("weights", "samples")


def values_checkable(t: Tensor) -> bool:
    """Whether a value check on ``t`` is free of host synchronisation and graph breaks.

    Not under a ``torch.func`` transform either: ``vmap`` forbids data-dependent control flow
    (per-sample gradients, ``vmap(grad(loss))``), so there, as in torch's own losses, an
    out-of-range index surfaces as the indexing error of ``gather``.
    """
    return (
        t.device.type == "cpu"
        and not torch.compiler.is_compiling()
        and not torch._C._are_functorch_transforms_active()
    )


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction should be one of {REDUCTIONS}, but got reduction={reduction!r}; "
            "pass 'mean', 'sum' or 'none'."
        )
    return reduction


def check_normalization(normalization: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization should be one of {NORMALIZATIONS}, but got "
            f"normalization={normalization!r}; 'weights' divides the mean by the sum of the "
            "target weights (torch's convention), 'samples' by the number of counted targets."
        )
    return normalization


def check_gamma(gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(
            f"gamma should be a non-negative float, but got gamma={gamma!r} "
            f"({type(gamma).__name__}); pass a number such as gamma=2.0."
        )
    if not 0 <= gamma < math.inf:  # also rejects NaN; gamma=inf would zero every loss
        raise ValueError(
            f"gamma should be a finite number >= 0, but got gamma={gamma!r}; gamma=0 is plain "
            "cross-entropy and the focal paper uses gamma=2."
        )
    return float(gamma)


def check_ignore_index(ignore_index: int) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(
            f"ignore_index should be an int, but got ignore_index={ignore_index!r} "
            f"({type(ignore_index).__name__}); pass an integer class index such as -100."
        )
    return int(ignore_index)


def check_device(t: Tensor, like: Tensor, *, name: str, like_name: str = "logits") -> None:
    """A per-class tensor must already be on the logits' device; moving it would sync."""
    if t.device != like.device:
        raise ValueError(
            f"{name} is on {t.device} but {like_name} is on {like.device}; per-class tensors "
            "are not copied for you on every call (a hidden host-device copy): move the loss "
            f"module with .to(device), or pass {name} as a tensor on {like.device}."
        )


def as_vector(
    value: Tensor | Sequence[float] | None, *, name: str, dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> Tensor | None:
    """A 1-D floating tensor from a tensor or sequence (``None`` stays ``None``).

    A tensor keeps its device; a sequence is built on ``device`` (default CPU).
    """
    if value is None:
        return None
    array_like = isinstance(value, (Tensor, Sequence)) or hasattr(value, "__array__")
    if isinstance(value, (str, bytes)) or not array_like:
        raise TypeError(
            f"{name} should be a 1-D tensor or sequence of floats, one per class, but got "
            f"{name} of type {type(value).__name__}."
        )
    if isinstance(value, Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(value, device=device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"{name} should be a 1-D tensor or sequence of floats, one per class, but got "
                f"a {type(value).__name__} that does not convert to numbers "
                f"({_preview(value)})."
            ) from None
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} should hold real numbers, but got dtype {t.dtype}.")
    if t.dim() != 1:
        raise ValueError(
            f"{name} should be 1-D with one entry per class, but got {name} of shape "
            f"{tuple(t.shape)}."
        )
    if not t.is_floating_point():
        t = t.to(dtype)
    return t


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_class_vector(vec: Tensor | None, num_classes: int, *, name: str) -> None:
    """Length check of a per-class vector against the logits' class dimension."""
    if vec is not None and vec.shape[0] != num_classes:
        raise ValueError(
            f"{name} should have one entry per class (C={num_classes}), but got {name} of "
            f"length {vec.shape[0]}; build it from counts over all {num_classes} classes."
        )


def _all_finite_and_at_least(t: Tensor, low: float) -> bool:
    """Whether every entry of a host tensor is finite and >= low (False for NaN)."""
    if t.numel() <= 64:
        # A Python pass over a short per-class vector is cheaper than a tensor reduction's
        # dispatch, which the functional forms would pay on every call.
        return all(math.isfinite(v) and v >= low for v in t.tolist())
    lo, hi = torch.aminmax(t)  # NaN propagates to both
    return bool(lo >= low) and bool(lo > -math.inf) and bool(hi < math.inf)


def check_class_values(t: Tensor, *, name: str, nonnegative: bool = True) -> None:
    """Every entry of a per-class vector on the host is finite, and >= 0 if ``nonnegative``."""
    low = 0.0 if nonnegative else -math.inf
    if not _all_finite_and_at_least(t, low):
        ok = torch.isfinite(t) & (t >= low)
        bad = (~ok).nonzero().flatten()
        c = int(bad[0])
        what = "finite, non-negative values" if nonnegative else "finite values"
        raise ValueError(
            f"{name} should hold {what}, one per class, but {name}[{c}] is {t[c].item()!r} "
            f"({bad.numel()} such {'entry' if bad.numel() == 1 else 'entries'} of "
            f"{t.numel()}); give every class a finite value{' >= 0' if nonnegative else ''}."
        )


def check_finite_values(t: Tensor, *, name: str, fix: str) -> None:
    """Every entry of a per-class vector on the host is finite (else ValueError)."""
    if not _all_finite_and_at_least(t, -math.inf):
        bad = (~torch.isfinite(t)).nonzero().flatten()
        c = int(bad[0])
        raise ValueError(
            f"{name} should be finite, but got {t[c].item()!r} for class {c} ({bad.numel()} "
            f"non-finite {'entry' if bad.numel() == 1 else 'entries'} of {t.numel()}); {fix}"
        )


def class_vector(
    value: Tensor | Sequence[float] | None, like: Tensor, *, name: str, like_name: str = "logits",
    nonnegative: bool = True,
) -> Tensor | None:
    """A per-class vector for one loss call, checked against the (N, C, ...) tensor ``like``.

    A sequence is checked on the host (finite; non-negative unless ``nonnegative=False``, for
    margins, which may be negative like the scalar ``margin``) and then copied to ``like``'s
    device; a tensor must already be there, and its values are checked only where that is free
    (see the module's design note). The length must be C.
    """
    if value is None:
        return None
    host_data = not isinstance(value, Tensor)
    t = as_vector(value, name=name)  # a sequence is built on the host, a tensor stays put
    assert t is not None
    if not host_data:
        check_device(t, like, name=name, like_name=like_name)
    check_class_vector(t, like.shape[1], name=name)
    if values_checkable(t):
        check_class_values(t, name=name, nonnegative=nonnegative)
    return t.to(like.device) if host_data else t


def check_logits(logits: Tensor, *, name: str = "logits") -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} should be a torch.Tensor, but got {type(logits).__name__}.")
    if not logits.is_floating_point():
        raise TypeError(
            f"{name} should be a floating tensor of raw scores, but got dtype {logits.dtype}; "
            f"call {name}.float()."
        )
    if logits.dim() < 2:
        raise ValueError(
            f"{name} should have shape (N, C) or (N, C, d1, ...), but got shape "
            f"{tuple(logits.shape)}; add a batch dimension with {name}.unsqueeze(0)."
        )


def check_index_target(
    logits: Tensor, target: Tensor, ignore_index: int, *, name: str = "logits"
) -> Tensor:
    """Checks a class-index target against (N, C, d1, ...) logits; returns it as int64.

    Any integer dtype is accepted and converted here, the one place every index loss passes
    through (see the module's design note). Shapes and dtypes are always checked; values only
    where that is free.
    """
    check_logits(logits, name=name)
    check_ignore_index(ignore_index)
    if not isinstance(target, Tensor):
        raise TypeError(f"target should be a torch.Tensor, but got {type(target).__name__}.")
    if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
        raise TypeError(
            f"target should hold class indices (an integer tensor), but got dtype "
            f"{target.dtype}; for probabilities or 0/1 labels use BinaryFocalLoss, for "
            "indices call target.long()."
        )
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match {name} shape "
            f"{tuple(logits.shape)}; target should have shape {expected} (the {name} "
            "shape without the class dimension 1)."
        )
    if target.device != logits.device:
        raise ValueError(
            f"target is on {target.device} but {name} is on {logits.device}; move both to "
            "the same device."
        )
    # Before any comparison with ignore_index, which a narrower dtype would wrap (uint8: -100
    # becomes 156). A no-op for int64; elsewhere an elementwise cast, no host synchronisation.
    target = target.to(torch.int64)
    if target.numel() and values_checkable(target):
        num_classes = logits.shape[1]
        bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
        if bad.any():
            value = int(target[bad][0])
            raise ValueError(
                f"target holds class index {value}, outside [0, {num_classes}) for C="
                f"{num_classes} classes (ignore_index={ignore_index}); check the labels or "
                "the number of output units."
            )
    return target


def check_binary_target(logits: Tensor, target: Tensor) -> None:
    check_logits_any_shape(logits)
    if not isinstance(target, Tensor):
        raise TypeError(f"target should be a torch.Tensor, but got {type(target).__name__}.")
    if not target.is_floating_point():
        raise TypeError(
            f"target should be a floating tensor of 0/1 labels (or probabilities) with the "
            f"logits' shape, but got dtype {target.dtype}; call target.float(), or use "
            "FocalLoss for class indices."
        )
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)}; binary and multi-label targets have the logits' shape."
        )


def check_logits_any_shape(logits: Tensor) -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits should be a torch.Tensor, but got {type(logits).__name__}.")
    if not logits.is_floating_point():
        raise TypeError(
            f"logits should be a floating tensor, but got dtype {logits.dtype}; call "
            "logits.float()."
        )


def log_prior(
    prior_or_counts: Tensor | Sequence[float], *, always_check: bool = False,
    like: Tensor | None = None,
) -> Tensor:
    """log of the normalised prior from counts or a prior; rejects zero and negative entries.

    Modules call this once at construction with ``always_check=True`` (a one-off read is fine
    there); the functional form checks values only where that is free, and passes its logits as
    ``like``: a tensor must then be on their device, a sequence is checked on the host and its
    log-prior copied to their device.
    """
    if like is not None and isinstance(prior_or_counts, Tensor):
        check_device(prior_or_counts, like, name="prior_or_counts")
    p = as_vector(prior_or_counts, name="prior_or_counts", dtype=torch.float64)
    assert p is not None
    p = p.detach().to(torch.float64)
    if p.numel() == 0:
        raise ValueError("prior_or_counts should have one entry per class, but got an empty vector.")
    if always_check or values_checkable(p):
        check_finite_values(
            p, name="prior_or_counts",
            fix="pass a positive, finite count or prior for every class.",
        )
        nonpositive = (p <= 0).nonzero().flatten()
        if nonpositive.numel():
            c = int(nonpositive[0])
            raise ValueError(
                f"prior_or_counts has {p[c].item():g} for class {c}; its log-prior would be "
                "-inf. Every class needs a positive count or prior: add a pseudo-count "
                "(e.g. counts + 1)."
            )
    lp = torch.log(p / p.sum()).to(torch.float32)
    return lp if like is None else lp.to(like.device)


def class_vector_buffer(
    value: Tensor | Sequence[float] | None, *, name: str, nonnegative: bool = True
) -> Tensor | None:
    """A per-class setting as a detached float32 buffer, checked for finite (and, if
    ``nonnegative``, non-negative) values."""
    t = as_vector(value, name=name)
    if t is None:
        return None
    t = t.detach().to(torch.float32).clone()
    check_class_values(t.cpu(), name=name, nonnegative=nonnegative)  # a one-off read at set-up
    return t


def check_binary_alpha(alpha: float | None) -> float | None:
    if alpha is None:
        return None
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(
            f"alpha should be a float in [0, 1] (the weight of the positives) or None, but got "
            f"alpha={alpha!r} ({type(alpha).__name__}); pass a number such as alpha=0.25."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha should be in [0, 1] (the weight of the positives), but got alpha={alpha!r}; "
            "the focal paper uses alpha=0.25."
        )
    return float(alpha)



MARGIN_KINDS = ("hinge", "log", "square_square")
MARGIN_AGAINST = ("most_offending", "all")


def check_margin_settings(
    kind: str, against: str, margin: float, class_margins: object = None
) -> None:
    if kind not in MARGIN_KINDS:
        raise ValueError(
            f"kind should be one of {MARGIN_KINDS}, but got kind={kind!r}; pick one of those."
        )
    if against not in MARGIN_AGAINST:
        raise ValueError(
            f"against should be one of {MARGIN_AGAINST}, but got against={against!r}; "
            "'most_offending' uses the best wrong class, 'all' sums over every wrong class."
        )
    check_finite(margin, "margin", "1.0")
    if kind == "log" and class_margins is not None:
        raise ValueError(
            "class_margins has no effect with kind='log' (the soft hinge has no margin); "
            "use kind='hinge' or kind='square_square', or drop class_margins."
        )


def check_at_least_two_classes(scores: Tensor) -> None:
    if scores.shape[1] < 2:
        raise ValueError(
            f"margin losses need C >= 2 classes, but got scores of shape {tuple(scores.shape)}."
        )



def check_positive(value: float, name: str, example: str) -> float:
    """A positive, finite Python number: TypeError for another type, ValueError for the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} should be a positive float, but got {name}={value!r} "
            f"({type(value).__name__}); pass a number such as {name}={example}."
        )
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"{name} should be a positive, finite float, but got {name}={value!r}; pass a number "
            f"such as {name}={example}."
        )
    return float(value)



def check_finite(value: float, name: str, example: str) -> float:
    """A finite Python number: TypeError for another type, ValueError for inf or NaN."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} should be a finite float, but got {name}={value!r} "
            f"({type(value).__name__}); pass a number such as {name}={example}."
        )
    if not math.isfinite(value):
        raise ValueError(
            f"{name} should be finite, but got {name}={value!r}; pass a number such as "
            f"{name}={example}."
        )
    return float(value)


def check_tau(tau: float) -> float:
    return check_finite(tau, "tau", "1.0")



def positive_counts(
    counts: Tensor | Sequence[float], *, name: str, always_check: bool, why: str,
    like: Tensor | None = None,
) -> Tensor:
    """counts as a float64 vector, every entry checked finite and > 0 (``why`` says what a zero
    would break). A tensor must be on ``like``'s device when ``like`` is given; values are read
    only where that is free, unless ``always_check`` (the modules, once, at construction)."""
    if counts is None:
        raise TypeError(
            f"{name} should be a 1-D tensor or sequence of positive counts, one per class, but "
            f"got {name}=None; pass the positives of every label in the training targets "
            f"(train_targets.sum(0)), or build the loss module with .from_labels(train_targets)."
        )
    if like is not None and isinstance(counts, Tensor):
        check_device(counts, like, name=name)
    n = as_vector(counts, name=name, dtype=torch.float64)
    assert n is not None
    n = n.to(torch.float64)
    if always_check or values_checkable(n):
        host = n.detach().cpu()
        check_finite_values(host, name=name, fix="pass a positive, finite count for every class.")
        zero = (host <= 0).nonzero().flatten()
        if zero.numel():
            c = int(zero[0])
            raise ValueError(
                f"{name} has {host[c].item():g} for class {c}; {why}. Every class needs a "
                f"positive count: add a pseudo-count ({name} + 1)."
            )
    return n


def check_nonnegative(value: float, name: str, example: str) -> float:
    """A finite Python number >= 0: TypeError for another type, ValueError for the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} should be a non-negative float, but got {name}={value!r} "
            f"({type(value).__name__}); pass a number such as {name}={example}."
        )
    if not 0 <= value < math.inf:  # also rejects NaN
        raise ValueError(
            f"{name} should be a finite number >= 0, but got {name}={value!r}; pass a number "
            f"such as {name}={example}."
        )
    return float(value)


def check_clip(clip: float) -> float:
    clip = check_nonnegative(clip, "clip", "0.05")
    if clip >= 1.0:
        raise ValueError(
            f"clip should be in [0, 1) (the probability margin shifted off the negatives), but "
            f"got clip={clip!r}; the asymmetric-loss paper uses clip=0.05, and 0 turns it off."
        )
    return clip


def check_multilabel_target(logits: Tensor, target: Tensor) -> None:
    """(N, L) floating logits and a floating target of the same shape, on the same device."""
    check_logits_any_shape(logits)
    if logits.dim() != 2:
        raise ValueError(
            f"logits should have shape (N, L), one column per label, but got shape "
            f"{tuple(logits.shape)}; reshape to (N, L) (for a single binary label, use "
            "BinaryFocalLoss or logits.unsqueeze(1))."
        )
    if not isinstance(target, Tensor):
        raise TypeError(f"target should be a torch.Tensor, but got {type(target).__name__}.")
    if not target.is_floating_point():
        hint = (
            " A 1-D integer target holds class indices: use a single-label loss (FocalLoss, "
            "WeightedCrossEntropyLoss), or F.one_hot(target, L).float() for one label each."
            if target.dim() == 1 else " Call target.float()."
        )
        raise TypeError(
            f"target should be a floating (N, L) tensor of 0/1 labels, the logits' shape "
            f"{tuple(logits.shape)}, but got dtype {target.dtype} and shape "
            f"{tuple(target.shape)}.{hint}"
        )
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)}; multi-label targets are (N, L) 0/1 floats, one column "
            "per label, the logits' shape."
        )
    if target.device != logits.device:
        raise ValueError(
            f"target is on {target.device} but logits is on {logits.device}; move both to "
            "the same device."
        )


def check_num_samples(num_samples: int) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(
            f"num_samples should be an int (the number of training samples the counts come "
            f"from), but got num_samples={num_samples!r} ({type(num_samples).__name__}); pass "
            "len(train_dataset)."
        )
    if num_samples < 2:
        raise ValueError(
            f"num_samples should be >= 2 (the number of training samples the counts come "
            f"from), but got num_samples={num_samples}; pass len(train_dataset)."
        )
    return int(num_samples)


def label_counts(
    counts: Tensor | Sequence[float], num_samples: int, *, always_check: bool,
    like: Tensor | None = None,
) -> Tensor:
    """Per-label positive counts as float64, each checked in (0, num_samples): a label needs
    positives and negatives for its prior's log-odds (and pos_weight) to be finite."""
    num_samples = check_num_samples(num_samples)
    n = positive_counts(
        counts, name="counts", always_check=always_check, like=like,
        why="its prior (log-odds, pos_weight, inverse frequency) would be infinite",
    )
    if always_check or values_checkable(n):
        host = n.detach().cpu()
        full = (host >= num_samples).nonzero().flatten()
        if full.numel():
            c = int(full[0])
            raise ValueError(
                f"counts has {host[c].item():g} for label {c}, not below num_samples="
                f"{num_samples}: a label positive in every sample has no negatives and "
                "infinite log-odds. Check num_samples (the number of samples counted), or drop "
                "that label."
            )
    return n


def check_label_vector(vec: Tensor, num_labels: int, *, name: str) -> None:
    if vec.shape[0] != num_labels:
        raise ValueError(
            f"{name} should have one entry per label (L={num_labels}), but got {name} of "
            f"length {vec.shape[0]}; count positives over all {num_labels} label columns."
        )
