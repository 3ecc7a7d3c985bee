"""What the multi-label losses take: from_labels() reads every 0/1 label form (tensors, numpy,
what labels_of returns, a DataFrame) and names an entry that is not 0 or 1; counts, targets of
the wrong shape, dtype or type get errors that name the argument and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.testing import assert_close

import losses
import losses.functional as LF
from balancer import labels_of


@pytest.mark.parametrize("loss", [losses.PosWeightedBCELoss, losses.SigmoidLogitAdjustedLoss,
                                  losses.DistributionBalancedLoss])
@pytest.mark.parametrize(("value", "shown"), [(-1.0, "-1"), (2.0, "2"), (0.5, "0.5"),
                                               (float("nan"), "nan")])
def test_from_labels_refuses_a_label_matrix_that_is_not_0_1(loss, value, shown):
    """README: "label counts from the training targets" of "0/1 float targets". A CheXpert
    -1 ("uncertain") used to be summed into the count without a word (a wrong prior), a 2 was
    blamed on num_samples, a 0.5 passed; now the entry is named with its position."""
    labels = torch.tensor([[1.0, 0.0], [value, 1.0], [0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=rf"labels\[1, 0\] = {shown} .*map uncertain"):
        loss.from_labels(labels)
    ok = loss.from_labels(labels.nan_to_num(0.0).clamp(0, 1).round())
    assert ok.num_samples == 4


def test_from_labels_still_takes_bool_int_and_numpy_0_1_matrices():
    rows = [[1, 0], [0, 1], [1, 1], [0, 0]]
    expected = losses.PosWeightedBCELoss([2.0, 2.0], num_samples=4).pos_weight
    for labels in (torch.tensor(rows), torch.tensor(rows).bool(), np.array(rows)):
        torch.testing.assert_close(losses.PosWeightedBCELoss.from_labels(labels).pos_weight,
                                   expected)


@pytest.mark.parametrize("loss", [losses.PosWeightedBCELoss, losses.SigmoidLogitAdjustedLoss,
                                  losses.DistributionBalancedLoss])
def test_from_labels_takes_the_targets_labels_of_returns_and_a_dataframe(loss):
    """Broke: from_labels() of what the README's labels_of(..., multilabel=True) returns
    raised torch's "Could not infer dtype of MultiLabels", a DataFrame of 0/1 columns "could
    not determine the shape", a list of '|'-joined strings "too many dimensions 'str'". Now
    the first two give the counts of the dense matrix, the last a TypeError with the fix."""
    findings = ["Mass|Effusion", "Mass", "No Finding", "Effusion", "No Finding", "Mass"]
    table = pd.DataFrame({"Finding Labels": findings})
    targets = labels_of(table, "Finding Labels", multilabel=True)
    dense = torch.from_numpy(targets.dense()).float()
    want = loss.from_labels(dense)
    for labels in (targets, pd.DataFrame(dense.numpy(), columns=["Effusion", "Mass"])):
        got = loss.from_labels(labels)
        assert got.num_samples == want.num_samples == 6
        for a, b in zip(got.buffers(), want.buffers(), strict=True):
            assert_close(a, b)
    with pytest.raises(TypeError, match=r"labels should be an \(N, L\) 0/1 label matrix.*but "
                                        r"got a list.*balancer.labels_of\(table, column, "
                                        r"multilabel=True\)"):
        loss.from_labels(findings)
    with pytest.raises(ValueError, match="labels should hold only 0 and 1"):
        loss.from_labels(pd.DataFrame({"a": [1, 0, 2], "b": [0, 1, 1]}))


def test_counts_that_are_no_numbers_are_named_errors():
    """Broke: counts=None raised a bare AssertionError, and counts of strings torch's
    "too many dimensions 'str'"; now a TypeError names counts and the fix."""
    z, t = torch.zeros(4, 3), torch.zeros(4, 3)
    with pytest.raises(TypeError, match=r"counts=None; pass the positives of every label"):
        LF.pos_weighted_bce(z, t, None, num_samples=10)
    with pytest.raises(TypeError, match=r"counts=None"):
        LF.distribution_balanced_loss(z, t, None, num_samples=10)
    with pytest.raises(TypeError, match=r"counts should be a 1-D tensor or sequence of floats.*"
                                        r"does not convert to numbers \(\['a', 'b', 'c'\]\)"):
        LF.sigmoid_logit_adjusted_bce(z, t, ["a", "b", "c"], num_samples=10)
    with pytest.raises(TypeError, match=r"counts=None"):
        losses.SigmoidLogitAdjustedLoss(None, num_samples=10)


def test_wrong_target_shapes_and_dtypes_are_named_errors():
    """Held: every multi-label loss, functional and module, names a target of the wrong
    shape, dtype or type, and 1-D class indices get the single-label hint."""
    z = torch.zeros(4, 3)
    modules = [losses.AsymmetricLoss(), losses.PosWeightedBCELoss([1, 2, 3], num_samples=10),
               losses.SigmoidLogitAdjustedLoss([1, 2, 3], num_samples=10),
               losses.DistributionBalancedLoss([1, 2, 3], num_samples=10)]
    for fn in [m.forward for m in modules] + [
            lambda x, y: LF.asymmetric_loss(x, y),
            lambda x, y: LF.pos_weighted_bce(x, y, [1, 2, 3], num_samples=10)]:
        with pytest.raises(ValueError, match=r"target shape \(3, 4\) does not match logits "
                                             r"shape \(4, 3\)"):
            fn(z, torch.zeros(3, 4))
        with pytest.raises(TypeError, match=r"1-D integer target holds class indices"):
            fn(z, torch.zeros(4, dtype=torch.long))
        with pytest.raises(TypeError, match=r"got dtype torch.bool .* Call target.float\(\)"):
            fn(z, torch.zeros(4, 3, dtype=torch.bool))
        with pytest.raises(TypeError, match="target should be a torch.Tensor, but got ndarray"):
            fn(z, np.zeros((4, 3)))
        with pytest.raises(ValueError, match=r"logits should have shape \(N, L\)"):
            fn(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"target shape \(1, 3\) does not match"):
        LF.binary_focal_loss(z, torch.zeros(1, 3))  # no broadcasting


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("loss", [losses.PosWeightedBCELoss, losses.SigmoidLogitAdjustedLoss,
                                  losses.DistributionBalancedLoss])
def test_from_labels_takes_a_sparse_label_matrix(loss):
    """Broke: a torch sparse COO matrix raised "Could not run 'aten::ne.Scalar' with arguments
    from the 'SparseCPU' backend", a CSR one "unsupported tensor layout: SparseCsr", a scipy one
    "does not convert to one". Now each counts like its dense twin, without a dense copy."""
    dense = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]])
    want = loss.from_labels(dense)
    forms = [dense.to_sparse(), dense.to_sparse_csr(), dense.bool().to_sparse(),
             dense.float().to_sparse_csc()]
    sparse = pytest.importorskip("scipy.sparse")
    forms += [sparse.csr_matrix(dense.numpy()), sparse.coo_matrix(dense.numpy())]
    for labels in forms:
        got = loss.from_labels(labels)
        assert got.num_samples == 4
        for a, b in zip(got.buffers(), want.buffers(), strict=True):
            assert_close(a, b)


def test_from_labels_refuses_a_sparse_matrix_that_is_not_0_1_or_not_2d():
    labels = torch.sparse_coo_tensor(torch.tensor([[2], [1]]), torch.tensor([-1.0]), (4, 3),
                                     check_invariants=True)
    with pytest.raises(ValueError, match=r"labels\[2, 1\] = -1 \(1 such entries\); map uncertain"):
        losses.PosWeightedBCELoss.from_labels(labels)
    with pytest.raises(ValueError, match=r"\(N, L\) 0/1 label matrix, but got a sparse tensor of "
                                         r"shape \(2, 2, 2\)"):
        losses.PosWeightedBCELoss.from_labels(torch.ones(2, 2, 2).to_sparse())
