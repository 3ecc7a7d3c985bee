r"""Fast paths of the multi-label (sigmoid) losses: one row-chunked CPU kernel and the plain
autograd formulas it is tested against.

Each loss in :mod:`losses.functional` builds a *spec*, a small object with the loss's settings
and three methods: ``plain(z, t)``, the elementwise loss from autograd primitives;
``prepared(lowest, highest, rows, width, dtype)``, the spec for one call of the CPU kernel (given the
logits' range, or none for a reduced loss; see :func:`_run_chunks`); and
``chunk(z, t, loss_out, grad_out, want_sum)``, the loss (its sum, or written into ``loss_out``)
and its closed-form gradient (written into ``grad_out``) for a block of rows.
:func:`sigmoid_loss` is the one dispatch: eager CPU calls run ``chunk`` over blocks of rows in
:class:`_RowChunkedCPU`; CUDA, ``torch.compile``, ``torch.func`` transforms and double backward
use ``plain``.

Row-chunked CPU kernel (design note)
-------------------------------------
As for the binary focal loss (see :mod:`losses._kernels`): on CPU a fresh buffer of the
logits' size costs about ten in-place passes (page faults on freshly mapped memory), and an
elementwise sigmoid loss built from autograd primitives keeps several such buffers alive until
backward. Here forward runs over blocks of whole rows of about ``_kernels._CHUNK_BYTES``, so a
block's temporaries stay in the L2 cache and per-label vectors broadcast along the rows; it
computes the loss and the gradient for a unit upstream gradient together, sharing the sigmoid
and log terms. The only buffers of the logits' size are that gradient (saved, as
cross-entropy saves its log-softmax, and written in place by the block's last op) and the
``"none"`` output; a reduced loss is one partial sum per block. Backward scales the saved
gradient in place and returns it; a second backward through the same graph
(``retain_graph=True``) recomputes it, so results never depend on how often backward runs.

Op budget. A kernel must cost about what ``F.binary_cross_entropy_with_logits`` costs forward
plus backward, which leaves it about twenty elementwise passes over a cached block per element
(the measurements behind this are in the docs' benchmarks page, "Design measurements"). What
makes that possible: every log-sigmoid is a sigmoid and a log (torch's ``log_sigmoid`` and
``softplus`` are not vectorised on CPU), without the floor clamp (see :func:`_log_sigmoid`)
unless a block needs it -- a reduced loss redoes a block whose sum is not finite, other calls
take one ``aminmax`` over the logits -- instead of a ``where`` and a comparison per element;
``lerp`` for every blend of positive and negative terms (vectorised, exact at t in {0, 1});
integer powers as products; no comparisons or boolean masks on the common paths; arguments of
sigmoids kept out of the range where they produce subnormals (an order of magnitude slower).

Small label counts (L = 14) would make every op that broadcasts a per-label vector run its
inner loop over 14 elements; the specs expand those vectors to contiguous blocks once per call.

Precision: :math:`\log \sigma(u)` comes from the sigmoid the gradient needs anyway, to about
one rounding of the sigmoid (relative for every element whose loss exceeds float epsilon,
absolute below it). A negative's :math:`\mathrm{softplus}(u) = u - \log\sigma(u)` is exact to
about one rounding of :math:`|u|` in absolute terms -- as torch's own
``binary_cross_entropy_with_logits``, which computes :math:`(1 - t) u - \log\sigma(u)` -- and is
clamped at 0, so rounding never leaves a loss below 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losses import _kernels as K


def sigmoid_loss(spec: Any, x: Tensor, t: Tensor, reduction: str) -> Tensor:
    """The elementwise loss of ``spec`` on upcast logits ``x`` (N, L), reduced."""
    if K._use_fast_cpu(x):
        need_grad = torch.is_grad_enabled() and x.requires_grad
        return _RowChunkedCPU.apply(x.contiguous(), t.contiguous(), spec, reduction, need_grad)
    return _reduce(spec.plain(x, t), reduction)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


# Below these, sigma(u) is subnormal or 0 in float32 / float64 (e^-87.3, e^-708.4 = tiny), and
# log(sigma(u)) from the sigmoid would lose u; _log_sigmoid then adds the clamped-off part back.
_SIGMOID_FLOOR = {torch.float32: -87.0, torch.float64: -708.0}


def _log_sigmoid(u: Tensor, extreme: bool) -> tuple[Tensor, Tensor]:
    r"""(sigma(u), log sigma(u)) from one sigmoid and one log: both vectorised on CPU, where
    torch's log_sigmoid and softplus are not and cost three times as much together.

    ``extreme``: some element may lie below the floor (see :func:`_run_chunks` for how the
    caller knows). Then u is clamped at the floor F first and log sigma(u) is
    log sigma(F) + (u - F), off by less than e^F (1e-38 in float32), and sigma(u) is returned as
    sigma(F), off by less than that too. The correction is min(u, F) - F, exactly 0 for every
    element at or above the floor (u = +inf included), so those keep the precision they have
    without the clamp: adding u and subtracting it again would round log sigma(u) to the
    spacing of u (a loss of 3e-7 at u = 15 became 0 in float32, because another element of the
    block was below the floor; and +inf - inf gave NaN). Precision: log sigma(u) to one
    rounding of the sigmoid, i.e. relative for every element whose loss exceeds float epsilon
    and absolute (below epsilon) for confident ones, as torch's own BCE with logits."""
    if not extreme:
        s = torch.sigmoid(u)
        return s, torch.log(s)
    floor = _SIGMOID_FLOOR[u.dtype]
    s = torch.sigmoid(torch.clamp_min(u, floor))
    return s, torch.log(s).add_(torch.clamp_max(u, floor).sub_(floor))


def _constant(value: float, dtype: torch.dtype) -> Tensor:
    """A 0-dim tensor for an op's scalar operand: a Python float is wrapped into a tensor and
    converted on every call (about a tenth of a pass over a block)."""
    return torch.tensor(value, dtype=dtype)


def _below_floor(lowest: float, dtype: torch.dtype) -> bool:
    return lowest < _SIGMOID_FLOOR[dtype]


class ShiftedBCE:
    r"""Weighted BCE on shifted logits with a scaled negative term (three losses in one):

    .. math::
        u = z + b, \qquad
        l = w\,\big( c^{+}\, t \,\mathrm{softplus}(-u)
            + (1 - t)\, \tfrac{1}{\lambda} \mathrm{softplus}(\lambda u) \big),
        \qquad \frac{\partial l}{\partial z}
            = w\,\big( (1 - t)\,\sigma(\lambda u) - c^{+}\, t\, \sigma(-u) \big)

    with per-label ``shift`` :math:`b` and ``pos_weight`` :math:`c^{+}` (None: 0 and 1),
    ``neg_scale`` :math:`\lambda` and a per-element weight :math:`w` = ``weight(t)`` (None: 1).

    The CPU kernel takes both softplus terms from log-sigmoids (see :func:`_log_sigmoid`):
    :math:`\mathrm{softplus}(-u) = -\log\sigma(u)` and
    :math:`\tfrac{1}{\lambda}\mathrm{softplus}(\lambda u) = u - \tfrac{1}{\lambda}\log\sigma(\lambda u)`,
    so the sigmoids the gradient needs, and their logs, are the only transcendental passes.
    """

    # Set by prepared() on the copy it returns, for the CPU kernel.
    _one: Tensor
    _lam: Tensor

    def __init__(
        self, *, shift: Tensor | None = None, pos_weight: Tensor | None = None,
        neg_scale: float = 1.0, weight: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.shift, self.pos_weight, self.neg_scale, self.weight = (
            shift, pos_weight, neg_scale, weight
        )

    def prepared(self, lowest: float, highest: float, rows: int, width: int,
                 dtype: torch.dtype) -> ShiftedBCE:
        """This spec for the CPU kernel: per-label vectors expanded to contiguous (rows, L)
        blocks (an elementwise op that broadcasts an (L,) vector runs its inner loop over L
        elements only, several times slower for L = 14 than over a contiguous block), and
        whether the logits' range (``lowest``, ``highest``) reaches a log-sigmoid's floor."""
        shift, pos_weight, blocked = self.shift, self.pos_weight, False
        if width < 256:
            def block(v: Tensor | None) -> Tensor | None:
                return None if v is None else v.expand(rows, width).contiguous()

            shift, pos_weight, blocked = block(shift), block(pos_weight), True
        spec = ShiftedBCE(shift=shift, pos_weight=pos_weight, neg_scale=self.neg_scale,
                          weight=self.weight)
        # -c+ once per call, not once per block: the loss takes -c+, the gradient c+.
        spec._minus_pos_weight = None if pos_weight is None else pos_weight.neg()
        spec._blocked = blocked
        spec._one, spec._lam = _constant(1.0, dtype), _constant(self.neg_scale, dtype)
        # The lowest shifted logit: below the floor, the log-sigmoids need their clamp.
        spec._u_low = lowest + (0.0 if self.shift is None or not self.shift.numel()
                                else float(self.shift.min()))
        return spec

    _blocked = False
    _minus_pos_weight: Tensor | None = None
    _u_low = 0.0

    def _fit(self, v: Tensor | None, rows: int) -> Tensor | None:
        return v[:rows] if self._blocked and v is not None else v

    def plain(self, z: Tensor, t: Tensor) -> Tensor:
        u = z if self.shift is None else z + self.shift
        lam = self.neg_scale
        pos = F.softplus(-u) if self.pos_weight is None else self.pos_weight * F.softplus(-u)
        neg = F.softplus(u) if lam == 1.0 else F.softplus(lam * u) / lam
        loss = torch.lerp(neg, pos, t)  # t * pos + (1 - t) * neg, exact at t in {0, 1}
        return loss if self.weight is None else loss * self.weight(t)

    def chunk(self, z: Tensor, t: Tensor, loss_out: Tensor | None, grad_out: Tensor | None,
              want_sum: bool) -> Tensor | None:
        """The loss of a block of rows: its sum (``want_sum``) or written into ``loss_out``;
        its gradient for a unit upstream gradient written into ``grad_out`` (if given)."""
        rows = len(z)
        shift = self._fit(self.shift, rows)
        c, minus_c = self._fit(self.pos_weight, rows), self._fit(self._minus_pos_weight, rows)
        lam = self.neg_scale
        u = z if shift is None else torch.add(z, shift)
        s, log_s = _log_sigmoid(u, _below_floor(self._u_low, z.dtype))  # log s = -softplus(-u)
        if lam == 1.0:
            s_neg = s  # sigma(lam u)
            # softplus(u) = u - log sigma(u); the clamp: for u << 0 the two round to within an
            # ulp of each other, and a loss must not come out an ulp below 0.
            neg = torch.sub(u, log_s).clamp_min_(0.0)
        else:
            # softplus(lam u) / lam = u - log sigma(lam u) / lam; lam > 0.
            s_neg, log_neg = _log_sigmoid(torch.mul(u, self._lam),
                                          _below_floor(self._u_low * lam, z.dtype))
            neg = torch.add(u, log_neg, alpha=-1.0 / lam).clamp_min_(0.0)  # as for lam = 1
        pos = log_s.neg_() if minus_c is None else log_s.mul_(minus_c)
        w = None if self.weight is None else self.weight(t)
        total = None
        if loss_out is not None or want_sum:
            loss = torch.lerp(neg, pos, t, out=loss_out)  # exact at t in {0, 1}
            if w is None:
                total = loss.sum() if want_sum else None
            elif want_sum:
                total = torch.dot(loss.view(-1), w.view(-1))
            else:
                loss.mul_(w)
        if grad_out is not None:
            if lam == 1.0 and minus_c is None:
                torch.sub(s, t, out=grad_out)  # torch's own BCE gradient, sigma(u) - t
            else:
                minus_q = torch.sub(s, self._one)  # -sigma(-u), as torch's BCE gradient rounds it
                if c is not None:
                    minus_q.mul_(c)
                torch.lerp(s_neg, minus_q, t, out=grad_out)
            if w is not None:
                grad_out.mul_(w)
        return total


class Asymmetric:
    r"""Asymmetric loss (ASL), elementwise; :math:`p = \sigma(z)`, :math:`p_m = \max(p - m, 0)`:

    .. math::
        l = -t\,(1 - p)^{\gamma_+} \log p - (1 - t)\, p_m^{\gamma_-} \log(1 - p_m)

    Gradient, with :math:`[p > m]` the clip's gate:

    .. math::
        \frac{\partial l}{\partial z} = (1 - p)^{\gamma_+}\big(\gamma_+ p \log p - (1 - p)\big)\,t
            + (1 - t)\,[p > m]\; p (1 - p) \Big( \frac{p_m^{\gamma_-}}{1 - p_m}
            - \gamma_-\, p_m^{\gamma_- - 1} \log(1 - p_m) \Big)

    :math:`1 - p_m = \min(1 - p + m, 1)`. The plain formula clamps both powers' bases at the
    smallest normal float so that exponents below 1 keep autograd's gradients finite (as in
    the focal losses); the closed form needs no negative power. In the CPU kernel
    :math:`1 - p` is :math:`1 - \sigma(z)`, absolute precision as in torch's BCE gradient
    (only ``clip=0`` needs :math:`\log \sigma(-z)` itself, and takes a second sigmoid).
    """

    # Set by prepared() on the copy it returns, for the CPU kernel.
    _one: Tensor
    _clip: Tensor

    def __init__(self, *, gamma_neg: float, gamma_pos: float, clip: float) -> None:
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    negated_sum = True  # chunk() returns the sum of -l (see _run_chunks)

    def prepared(self, lowest: float, highest: float, rows: int, width: int,
                 dtype: torch.dtype) -> Asymmetric:
        spec = Asymmetric(gamma_neg=self.gamma_neg, gamma_pos=self.gamma_pos, clip=self.clip)
        spec._lowest, spec._highest = lowest, highest
        spec._one, spec._clip = _constant(1.0, dtype), _constant(self.clip, dtype)
        return spec

    _lowest = _highest = 0.0

    def _negative_log_terms(self, z: Tensor, s: Tensor, sn: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(p_m clamped at tiny, 1 - p_m, log(1 - p_m))."""
        tiny = torch.finfo(z.dtype).tiny
        if self.clip == 0.0:
            return s.clamp_min(tiny), sn, F.logsigmoid(-z)
        one_minus = torch.add(sn, self.clip).clamp_max_(1.0)
        return torch.sub(s, self.clip).clamp_min_(tiny), one_minus, torch.log(one_minus)

    def plain(self, z: Tensor, t: Tensor) -> Tensor:
        tiny = torch.finfo(z.dtype).tiny
        s, sn = torch.sigmoid(z), torch.sigmoid(-z)
        pos = F.logsigmoid(z)
        if self.gamma_pos != 0.0:
            pos = sn.clamp_min(tiny).pow(self.gamma_pos) * pos
        p_m, _, neg = self._negative_log_terms(z, s, sn)
        if self.gamma_neg != 0.0:
            neg = p_m.pow(self.gamma_neg) * neg
        return 0.0 - torch.lerp(neg, pos, t)  # 0.0, not -0.0, where both terms vanish

    def chunk(self, z: Tensor, t: Tensor, loss_out: Tensor | None, grad_out: Tensor | None,
              want_sum: bool) -> Tensor | None:
        """As :meth:`ShiftedBCE.chunk`."""
        tiny = torch.finfo(z.dtype).tiny
        gp, gn, m = self.gamma_pos, self.gamma_neg, self.clip
        s, log_p = _log_sigmoid(z, _below_floor(self._lowest, z.dtype))
        # Both terms with the loss's sign flipped (<= 0): pos = (1-p)^gp log p,
        # neg = p_m^gn log(1 - p_m).
        q = None if gp == 0.0 else torch.sub(self._one, s)  # 1 - p
        f_pos = None if q is None else _power(q, gp, tiny)
        pos = log_p if f_pos is None else torch.mul(f_pos, log_p)
        if m == 0.0:
            # log(1 - p) = log sigma(-z) needs its own sigmoid: 1 - p rounds to 0 for z > 17.
            sn, log_neg = _log_sigmoid(torch.neg(z), _below_floor(-self._highest, z.dtype))
            p_m = s if gn >= 1.0 else s.clamp_min(tiny)
            one_minus = None
        else:
            # For gn >= 1, p_m = 0 zeroes the negative term and its gradient exactly; below 1 the
            # power's derivative needs p_m > 0 and the gate below instead.
            p_m = torch.sub(s, self._clip).clamp_min_(0.0 if gn >= 1.0 else tiny)
            if m >= _CLIP_FROM_ONE_MINUS_P:
                # 1 - p_m = min(1 - p + m, 1) >= m: the rounding of 1 - p (one epsilon) costs at
                # most epsilon / m relative, so the second sigmoid is not needed.
                one_minus = torch.sub(self._one, p_m)
            else:
                # Kept: the gradient's p (1 - p) is then s * sigma(-z), relative precision. As
                # s - s^2 its rounding (one epsilon, absolute) is divided by 1 - p_m ~ m below,
                # which for m = 0.001 made float32 gradients of confident negatives 1e-4 off.
                sn = torch.sigmoid(torch.neg(z))
                one_minus = torch.add(sn, self._clip).clamp_max_(1.0)
            log_neg = torch.log(one_minus)
        d_neg, f_neg = _powers(p_m, gn)
        neg = log_neg if f_neg is None else torch.mul(f_neg, log_neg)
        total = None
        if want_sum:
            total = torch.lerp(neg, pos, t).sum()  # <= 0: _run_chunks flips the sign once
        elif loss_out is not None:
            torch.lerp(neg, pos, t, out=loss_out).neg_().add_(0.0)
        if grad_out is None:
            return total
        # positive part: (1-p)^gp (gp p log p - (1-p)); -(1-p) = p - 1 for gp = 0.
        if gp == 0.0:
            g_pos = torch.sub(s, self._one)
        else:
            g_pos = torch.mul(s, log_p)
            if gp != 1.0:
                g_pos.mul_(gp)
            assert q is not None and f_pos is not None  # gp != 0
            g_pos.sub_(q).mul_(f_pos)
        # negative part: p (1-p) (p_m^gn / (1 - p_m) - gn p_m^(gn-1) log(1 - p_m))
        if one_minus is None:  # p (1-p) / (1 - p_m) is p exactly (and 1 - p may underflow)
            if f_neg is None:
                g_neg = s
            else:
                g_neg = f_neg if f_neg is not p_m else f_neg.clone()
                if d_neg is not None:
                    g_neg.sub_(torch.mul(d_neg, sn).mul_(log_neg).mul_(gn))
                elif gn == 1.0:
                    g_neg.sub_(torch.mul(sn, log_neg))
                g_neg.mul_(s)
        else:
            g_neg = one_minus.reciprocal_() if f_neg is None else f_neg.div_(one_minus)
            if d_neg is not None:
                g_neg.addcmul_(d_neg, log_neg, value=-gn)
            elif gn == 1.0:
                g_neg.sub_(log_neg)
            # times p (1 - p): for m >= _CLIP_FROM_ONE_MINUS_P as p - p^2 in one op (absolute
            # precision, as p - 1 in g_pos, at most 1 / m times larger after the division),
            # below it from sigma(-z), computed above anyway.
            g_neg.mul_(torch.addcmul(s, s, s, value=-1.0) if m >= _CLIP_FROM_ONE_MINUS_P
                       else torch.mul(s, sn))
            if gn < 1.0:
                g_neg.mul_(s > m)  # the clip's gate: p <= m contributes nothing
        torch.lerp(g_neg, g_pos, t, out=grad_out)
        return total


# The smallest clip taken as 1 - sigma(z) + clip (see Asymmetric.chunk); the paper's is 0.05.
_CLIP_FROM_ONE_MINUS_P = 0.01


def _power(v: Tensor, gamma: float, tiny: float) -> Tensor:
    """v^gamma: small integer powers multiply; others clamp at tiny first, as the plain
    formula does."""
    if gamma == 1.0:
        return v
    if gamma == 2.0:
        return torch.mul(v, v)
    if gamma == 4.0:
        return torch.mul(v, v).square_()
    return v.clamp_min(tiny).pow_(gamma)


def _powers(p: Tensor, gamma: float) -> tuple[Tensor | None, Tensor | None]:
    """(p^(gamma - 1), p^gamma), None for a factor that is 1; small integer powers multiply."""
    if gamma == 0.0:
        return None, None
    if gamma == 1.0:
        return None, p
    if gamma == 2.0:
        return p, torch.mul(p, p)
    if gamma == 4.0:
        d = torch.mul(p, p).mul_(p)
        return d, torch.mul(d, p)
    d = torch.pow(p, gamma - 1.0)
    return d, torch.mul(d, p)


class _RowChunkedCPU(torch.autograd.Function):
    """A sigmoid loss whose forward also computes its gradient, block of rows by block; see
    the design note above."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, spec: Any, reduction: str, need_grad: bool) -> Tensor:
        loss, grad = _run_chunks(spec, x, t, reduction, need_grad)
        assert loss is not None  # a reduction was given
        if grad is not None:
            ctx.save_for_backward(grad, x, t)
            ctx.grad_intact = True
        ctx.spec, ctx.reduction = spec, reduction
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        grad, x, t = ctx.saved_tensors
        spec, reduction = ctx.spec, ctx.reduction
        if torch.is_grad_enabled():  # create_graph=True: see "Double backward" in _kernels
            grad = K._graph_grad(lambda z: _reduce(spec.plain(z, t), reduction), x, grad_out)
            return grad, None, None, None, None
        if reduction == "mean":
            grad_out = grad_out / max(x.numel(), 1)
        if ctx.grad_intact:
            ctx.grad_intact = False
            # In place through .data, as in _kernels._BinaryFocalCPU.
            grad = grad.data.mul_(grad_out)
        else:
            grad = _run_chunks(spec, x, t, None, True)[1]
            assert grad is not None
            grad.mul_(grad_out)
        return grad, None, None, None, None


def _run_chunks(
    spec: Any, x: Tensor, t: Tensor, reduction: str | None, with_grad: bool
) -> tuple[Tensor | None, Tensor | None]:
    """(loss reduced as ``reduction``, or None; elementwise gradient for a unit upstream
    gradient, or None), over blocks of whole rows of x (N, L)."""
    n, width = x.shape
    rows = max(1, K._chunk_bytes() // (x.element_size() * max(width, 1)))
    loss = torch.empty_like(x) if reduction == "none" else None
    grad = torch.empty_like(x) if with_grad else None
    want_sum = reduction in ("mean", "sum")
    # Whether any log-sigmoid needs its floor clamp. A reduced loss assumes not: a block with a
    # logit past a floor gets a log of 0, so a non-finite sum, and is computed again with the
    # clamps (a min over the logits would cost 7% of BCE's forward + backward at L = 14). Other
    # calls take the logits' range, one pass.
    if want_sum or not x.numel():
        lowest = highest = 0.0
    else:
        lowest, highest = (float(v) for v in torch.aminmax(x))
    fast = spec.prepared(lowest, highest, min(rows, n), width, x.dtype)
    blocks = [slice(start, start + rows) for start in range(0, n, rows)]

    def run(spec_: Any, block: slice) -> Any:  # the block's sum, or None
        return spec_.chunk(x[block], t[block], None if loss is None else loss[block],
                           None if grad is None else grad[block], want_sum)

    sums = [run(fast, block) for block in blocks]
    if want_sum:
        totals = torch.stack(sums) if sums else x.new_zeros(1)
        total = totals.sum()
        if not math.isfinite(total.item()):  # rare (|logit| > 87 in float32), or NaN logits
            safe = spec.prepared(-math.inf, math.inf, min(rows, n), width, x.dtype)
            for i, value in enumerate(totals.tolist()):
                if not math.isfinite(value):
                    totals[i] = run(safe, blocks[i])
            total = totals.sum()
        # 0.0 - x, not -x: a loss of 0 stays +0.0.
        loss = torch.rsub(total, 0.0) if getattr(spec, "negated_sum", False) else total
        if reduction == "mean":
            loss = loss / x.numel()  # an empty input gives NaN, as Tensor.mean does
    return loss, grad


class RebalanceWeight:
    r"""The distribution-balanced loss's smoothed re-balancing weight of every element,
    :math:`\hat r_{ik} = \alpha + \sigma(\beta (r_{ik} - \mu))` with
    :math:`r_{ik} = (1 / n_k) / \sum_{j : t_{ij} = 1} (1 / n_j)`; a function of the targets
    only (no gradient)."""

    def __init__(self, inv_counts: Tensor, *, alpha: float, beta: float, mu: float) -> None:
        self.inv_counts, self.alpha, self.beta, self.mu = inv_counts, alpha, beta, mu
        # Once per call, not per block: the scaled row and the scalar operands as tensors.
        self._scaled = (inv_counts * beta).unsqueeze(0)
        self._shift = _constant(beta * mu, inv_counts.dtype)
        self._alpha = _constant(alpha, inv_counts.dtype)

    def __call__(self, t: Tensor) -> Tensor:
        # A row without positives has P = 0: clamped at the smallest normal float, r stays
        # finite (<= 1 / tiny), so beta = 0 gives sigma(0) instead of 0 * inf = NaN, and
        # beta > 0 gives sigma(inf) = 1, the limit.
        p = torch.mv(t, self.inv_counts).clamp_min_(torch.finfo(t.dtype).tiny)
        # beta * r as an outer product by matmul: a broadcasting division would run its inner
        # loop over L elements only, slow for small L (and addmm's broadcast bias costs three
        # times the product at L = 14).
        arg = torch.mm(p.reciprocal_().unsqueeze(1), self._scaled)
        cpu = t.device.type == "cpu"  # elsewhere Python scalars, as everywhere on CUDA
        arg.sub_(self._shift if cpu else self.beta * self.mu)
        # sigma(50) is 1 in float32 and float64 alike, so the clamp changes no weight; without it
        # arguments near 90 (empty rows' huge r included) send the sigmoid through subnormals,
        # ten times slower.
        return arg.clamp_max_(50.0).sigmoid_().add_(self._alpha if cpu else self.alpha)
