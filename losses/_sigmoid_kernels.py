r"""Fast paths of the multi-label (sigmoid) losses: one row-chunked CPU kernel and the plain
autograd formulas it is tested against.

Each loss in :mod:`losses.functional` builds a *spec*, a small object with the loss's settings
and two methods: ``plain(z, t)``, the elementwise loss from autograd primitives, and
``chunk(z, t)``, the elementwise loss and its closed-form gradient for a block of rows.
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
and softplus terms. The only buffers of the logits' size are that gradient (saved, as
cross-entropy saves its log-softmax) and the ``"none"`` output. Backward scales the saved
gradient in place and returns it; a second backward through the same graph
(``retain_graph=True``) recomputes it, so results never depend on how often backward runs.

Small label counts (L = 14) would make every op that broadcasts a per-label vector run its
inner loop over 14 elements; the specs expand those vectors to contiguous blocks once per call.

Precision: the BCE-type losses use torch's fused ``softplus`` (``log1p(exp(beta u)) / beta``),
so a confident element keeps its tiny loss. The asymmetric loss takes :math:`\log p` as
:math:`\log \sigma(z)` of the sigmoid it needs anyway (torch's ``log_sigmoid`` is not
vectorised on CPU and alone cost a third of the kernel): relative precision for every element
whose loss exceeds float epsilon, absolute precision (below epsilon) for confident ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losses import _kernels as K


def sigmoid_loss(spec, x: Tensor, t: Tensor, reduction: str) -> Tensor:
    """The elementwise loss of ``spec`` on upcast logits ``x`` (N, L), reduced."""
    if K._use_fast_cpu(x):
        need_grad = torch.is_grad_enabled() and x.requires_grad
        return _RowChunkedCPU.apply(x.contiguous(), t.contiguous(), spec, reduction, need_grad)
    return _reduce(spec.plain(x, t), reduction)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _neg_log_sigmoid(u: Tensor, s: Tensor) -> Tensor:
    """-log sigma(u) = softplus(-u) from s = sigma(u): -log(s), or -u where s is no longer a
    normal float (there the two differ by less than e^u, below 1e-35 in float32). Built from
    vectorised ops: on CPU torch's log_sigmoid, softplus and log1p are not vectorised and cost
    several times as much. Precision: relative to the loss for every element except confident
    ones (loss below float epsilon), whose tiny loss is exact only in absolute terms."""
    floor = _SIGMOID_FLOOR[u.dtype]
    return torch.where(u < floor, u, torch.log(s)).neg_()


# Below these, sigma(u) is subnormal or 0 in float32 / float64 (e^-87.3, e^-708.4 = tiny).
_SIGMOID_FLOOR = {torch.float32: -87.0, torch.float64: -708.0}


def _blend(neg: Tensor, pos: Tensor, t: Tensor, one_minus_t: Tensor) -> Tensor:
    """t * pos + (1 - t) * neg, exact at t in {0, 1} (a lerp is too, but not vectorised on CPU);
    written into neg."""
    return neg.mul_(one_minus_t).add_(torch.mul(pos, t))


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
    """

    def __init__(
        self, *, shift: Tensor | None = None, pos_weight: Tensor | None = None,
        neg_scale: float = 1.0, weight=None,
    ) -> None:
        self.shift, self.pos_weight, self.neg_scale, self.weight = (
            shift, pos_weight, neg_scale, weight
        )

    def for_blocks(self, rows: int, width: int) -> ShiftedBCE:
        """This spec with its per-label vectors expanded to contiguous (rows, L) blocks: an
        elementwise op that broadcasts an (L,) vector runs its inner loop over L elements
        only, several times slower for L = 14 than over a contiguous block."""
        if width >= 256:
            return self

        def block(v: Tensor | None) -> Tensor | None:
            return None if v is None else v.expand(rows, width).contiguous()

        spec = ShiftedBCE(shift=block(self.shift), pos_weight=block(self.pos_weight),
                          neg_scale=self.neg_scale, weight=self.weight)
        spec._blocked = True
        return spec

    _blocked = False

    def _fit(self, v: Tensor | None, rows: int) -> Tensor | None:
        return v[:rows] if self._blocked and v is not None else v

    def plain(self, z: Tensor, t: Tensor) -> Tensor:
        u = z if self.shift is None else z + self.shift
        lam = self.neg_scale
        pos = F.softplus(-u) if self.pos_weight is None else self.pos_weight * F.softplus(-u)
        neg = F.softplus(u) if lam == 1.0 else F.softplus(lam * u) / lam
        loss = torch.lerp(neg, pos, t)  # t * pos + (1 - t) * neg, exact at t in {0, 1}
        return loss if self.weight is None else loss * self.weight(t)

    def chunk(self, z: Tensor, t: Tensor, with_grad: bool) -> tuple[Tensor, Tensor | None]:
        shift, pos_weight = self._fit(self.shift, len(z)), self._fit(self.pos_weight, len(z))
        u = z if shift is None else z + shift
        lam = self.neg_scale
        # softplus(u, beta) = log1p(exp(beta u)) / beta, one fused op: beta = -1 gives
        # -softplus(-u) = log sigma(u), beta = lam the scaled negative term.
        neg = F.softplus(u) if lam == 1.0 else F.softplus(u, beta=lam)
        pos = F.softplus(u, beta=-1.0)
        if pos_weight is None:
            pos.neg_()
        else:
            pos.mul_(-pos_weight)
        loss = torch.lerp(neg, pos, t)  # exact at t in {0, 1}
        w = None if self.weight is None else self.weight(t)
        if w is not None:
            loss.mul_(w)
        if not with_grad:
            return loss, None
        s = torch.sigmoid(u)
        if lam == 1.0 and pos_weight is None:
            grad = s.sub_(t)  # torch's own BCE gradient, sigma(u) - t
        else:
            s_neg = s if lam == 1.0 else torch.sigmoid(u * lam)
            minus_q = torch.sub(s, 1.0)  # -sigma(-u), as torch's BCE gradient rounds it
            if pos_weight is not None:
                minus_q.mul_(pos_weight)
            grad = torch.lerp(s_neg, minus_q, t)
        return loss, grad if w is None else grad.mul_(w)


class Asymmetric:
    r"""Asymmetric loss (ASL), elementwise; :math:`p = \sigma(z)`, :math:`p_m = \max(p - m, 0)`:

    .. math::
        l = -t\,(1 - p)^{\gamma_+} \log p - (1 - t)\, p_m^{\gamma_-} \log(1 - p_m)

    Gradient, with :math:`q^{\pm}` the focusing factors and :math:`[p > m]` the clip's gate:

    .. math::
        \frac{\partial l}{\partial z} = -t\,(1-p)^{\gamma_+}\big((1 - p) - \gamma_+ p \log p\big)
            + (1 - t)\,[p > m]\; p (1 - p) \Big( \frac{p_m^{\gamma_-}}{1 - p_m}
            - \gamma_-\, p_m^{\gamma_- - 1} \log(1 - p_m) \Big)

    :math:`1 - p_m = \min(1 - p + m, 1)`; both powers act on values clamped at the smallest normal
    float so that exponents below 1 keep gradients finite (as in the focal losses).
    """

    def __init__(self, *, gamma_neg: float, gamma_pos: float, clip: float) -> None:
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    def _negative_log_terms(self, z: Tensor, s: Tensor, sn: Tensor):
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

    def chunk(self, z: Tensor, t: Tensor, with_grad: bool) -> tuple[Tensor, Tensor | None]:
        tiny = torch.finfo(z.dtype).tiny
        gp, gn, m = self.gamma_pos, self.gamma_neg, self.clip
        one_minus_t = torch.sub(1.0, t)
        s = torch.sigmoid(z)
        sn = torch.sigmoid(-z)
        log_p = _neg_log_sigmoid(z, s).neg_()
        f_pos = None if gp == 0.0 else sn.clamp_min(tiny).pow_(gp)
        if m == 0.0:
            log_neg = _neg_log_sigmoid(torch.neg(z), sn).neg_()  # log(1 - p), stable
            p_m = s if gn >= 1.0 else s.clamp_min(tiny)
            one_minus = None
        else:
            one_minus = torch.add(sn, m).clamp_max_(1.0)  # 1 - p_m
            log_neg = torch.log(one_minus)
            # For gn >= 1, p_m = 0 zeroes the negative term and its gradient exactly; below 1 the
            # power's derivative needs p_m > 0 and the gate below instead.
            p_m = torch.sub(s, m).clamp_min_(0.0 if gn >= 1.0 else tiny)
        d_neg, f_neg = _powers(p_m, gn)
        neg_term = log_neg.clone() if f_neg is None else torch.mul(f_neg, log_neg)
        pos_term = log_p if f_pos is None else torch.mul(f_pos, log_p)
        loss = torch.rsub(_blend(neg_term, pos_term, t, one_minus_t), 0.0)  # 0.0, never -0.0
        if not with_grad:
            return loss, None
        # positive part: -(1-p)^gp ((1-p) - gp p log p)
        if gp == 0.0:
            g_pos = sn.neg()
        else:
            g_pos = torch.mul(s, log_p).mul_(-gp).add_(sn).mul_(f_pos).neg_()
        # negative part: p (1-p) (p_m^gn / (1 - p_m) - gn p_m^(gn-1) log(1 - p_m))
        if one_minus is None:  # p (1-p) / (1 - p_m) is p exactly (and 1 - p may underflow)
            if f_neg is None:
                g_neg = s
            else:
                g_neg = f_neg.clone()
                if d_neg is not None:
                    g_neg.sub_(torch.mul(d_neg, sn).mul_(log_neg).mul_(gn))
                g_neg.mul_(s)
        else:
            g_neg = one_minus.reciprocal_() if f_neg is None else f_neg.div_(one_minus)
            if d_neg is not None:
                g_neg.sub_(torch.mul(d_neg, log_neg).mul_(gn))
            elif gn == 1.0:
                g_neg.sub_(log_neg)
            g_neg.mul_(s).mul_(sn)
            if gn < 1.0:
                g_neg.mul_(s > m)  # the clip's gate: p <= m contributes nothing
        return loss, _blend(g_neg, g_pos, t, one_minus_t)


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
    def forward(ctx, x: Tensor, t: Tensor, spec, reduction: str, need_grad: bool) -> Tensor:
        loss, grad = _run_chunks(spec, x, t, reduction, need_grad)
        if grad is not None:
            ctx.save_for_backward(grad, x, t)
            ctx.grad_intact = True
        ctx.spec, ctx.reduction = spec, reduction
        return loss

    @staticmethod
    def backward(ctx, grad_out: Tensor):
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
    spec, x: Tensor, t: Tensor, reduction: str | None, with_grad: bool
) -> tuple[Tensor | None, Tensor | None]:
    """(loss reduced as ``reduction``, or None; elementwise gradient for a unit upstream
    gradient, or None), over blocks of whole rows of x (N, L)."""
    n, width = x.shape
    rows = max(1, K._CHUNK_BYTES // (x.element_size() * max(width, 1)))
    starts = range(0, n, rows)
    loss = None
    if reduction == "none":
        loss = torch.empty_like(x)
    elif reduction is not None:
        loss = x.new_zeros(len(starts))  # one partial sum per block
    grad = torch.empty_like(x) if with_grad else None
    spec = spec.for_blocks(min(rows, n), width) if hasattr(spec, "for_blocks") else spec
    for i, start in enumerate(starts):
        block = slice(start, start + rows)
        value, g = spec.chunk(x[block], t[block], with_grad)
        if reduction == "none":
            loss[block] = value
        elif loss is not None:
            loss[i] = value.sum()
        if grad is not None:
            grad[block] = g
    if loss is not None and reduction != "none":
        loss = loss.sum()
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

    def __call__(self, t: Tensor) -> Tensor:
        # A row without positives has P = 0: clamped at the smallest normal float, r stays
        # finite (<= 1 / tiny), so beta = 0 gives sigma(0) instead of 0 * inf = NaN, and
        # beta > 0 gives sigma(inf) = 1, the limit.
        p = torch.mv(t, self.inv_counts).clamp_min_(torch.finfo(t.dtype).tiny)
        # beta * r as an outer product by matmul: a broadcasting division would run its inner
        # loop over L elements only, slow for small L.
        r = torch.mm(p.reciprocal_().unsqueeze(1), (self.inv_counts * self.beta).unsqueeze(0))
        return r.sub_(self.beta * self.mu).sigmoid_().add_(self.alpha)
