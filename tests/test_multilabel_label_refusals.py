"""Labels the multi-label samplers cannot plan are refused with the fix: float class ids,
duplicate label names, an empty CSV cell (however the CSV is read)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balancer import MultiLabelBalancedSampler, RepeatFactorSampler, labels_of


def test_float_class_ids_get_the_fix_for_the_repeat_factor_sampler():
    """Broke: RepeatFactorSampler takes one class per item, but class ids that came out as
    floats (a pandas column with a NaN once, np.array of floats) were told "For one class per
    sample use balancer.BalancedBatchSampler". Now: pass integer class ids."""
    for labels in ([0.0, 1.0, 1.0], np.array([0.0, 1.0, 2.0]), pd.Series([1.0, 0.0])):
        with pytest.raises(TypeError, match=r"labels\[0\] is a float .*one class per sample "
                                            r"should be an integer class id: pass "
                                            r"np.asarray\(labels\).astype\(int\)"):
            RepeatFactorSampler(labels, 2)
    RepeatFactorSampler(np.array([0.0, 1.0, 2.0]).astype(int), 2)


def test_duplicate_label_names_are_refused():
    """Broke: names=["x", "x", "y"] for a 3-column matrix (or a DataFrame with a repeated
    column) was accepted, so label_names and label_positive_rate named two labels alike."""
    matrix = np.eye(3, dtype=int)
    for sampler in (RepeatFactorSampler, MultiLabelBalancedSampler):
        with pytest.raises(ValueError, match=r"names holds 'x' twice"):
            sampler(matrix, 2, names=["x", "x", "y"])
        with pytest.raises(ValueError, match=r"labels \(a DataFrame\) holds the column 'a' "
                                            r"twice"):
            sampler(pd.DataFrame(matrix, columns=["a", "a", "b"]), 2)
        assert sampler(matrix, 2, names=["x", "y", "z"]).label_names.tolist() == ["x", "y", "z"]


def test_an_empty_csv_cell_is_a_missing_entry_whichever_way_the_csv_is_read(tmp_path):
    """Broke: labels_of("manifest.csv", column, multilabel=True) read an empty cell as the
    empty set (no finding) without a word, while the DataFrame pd.read_csv gives for the same
    file was refused ("missing entry"), as the README's errors promise: an image whose labels
    were never filled in silently joined the no-finding bucket. Now both are refused."""
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"f": ["A|C", "", "B", "No Finding"]}).to_csv(path, index=False)
    for source in (str(path), pd.read_csv(path)):
        with pytest.raises(ValueError, match=r"column 'f' of .* has (an empty cell|a missing "
                                            r"entry \(nan\)) at row 1 .*give every row its "
                                            r"findings"):
            labels_of(source, "f", multilabel=True)
    pd.DataFrame({"f": ["A|C", "No Finding", "B", "NA"]}).to_csv(path, index=False)
    targets = labels_of(str(path), "f", multilabel=True)
    assert targets.labels_per_sample.tolist() == [2, 0, 1, 1]
    assert targets.names.tolist() == ["A", "B", "C", "NA"]  # text is read as written
