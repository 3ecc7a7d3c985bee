"""The study's plots stay readable: the trade-off scatter with 15 rows (a distinct, saturated
colour and marker per row, every point named, labels apart) and reliability diagrams that show
how many predictions each bin holds and each panel's ECE."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from balancer.study._report import reliability_figure, row_style, tradeoff_figure

NAMES = ["plain", "weighted", "effective", "undersample", "oversample-wrs", "balanced",
         "balanced+finetune", "focal", "ldam-drw", "logit-adjusted", "hinge", "drs", "crt",
         "plain+posthoc", "balanced+posthoc"]


def _summary(points: dict[str, tuple[float, float]]) -> pd.DataFrame:
    columns = pd.MultiIndex.from_product([["accuracy", "balanced_accuracy"], ["mean", "std"]])
    return pd.DataFrame([[x, 0.01, y, 0.01] for x, y in points.values()],
                        index=list(points), columns=columns)


def _tint_pairs(colours) -> list[tuple]:
    """Pairs of one hue where one is a much lighter tint of the other (tab20's dark/pastel
    pairs): on a white background they read as one row."""
    hls = [colorsys.rgb_to_hls(*to_rgb(c)) for c in colours]
    return [(colours[i], colours[j]) for i, j in itertools.combinations(range(len(hls)), 2)
            if min(abs(hls[i][0] - hls[j][0]), 1 - abs(hls[i][0] - hls[j][0])) < 0.05
            and min(hls[i][2], hls[j][2]) > 0.15 and abs(hls[i][1] - hls[j][1]) > 0.15]


def test_every_row_of_fifteen_has_its_own_strong_colour_and_marker():
    import matplotlib.pyplot as plt

    styles = [row_style(k) for k in range(len(NAMES))]
    assert len(set(styles)) == len(NAMES)
    colours = sorted({colour for colour, _ in styles})
    assert _tint_pairs(colours) == []
    # No pastel: tab20's light halves have HLS lightness 0.67 to 0.84.
    assert max(colorsys.rgb_to_hls(*to_rgb(c))[1] for c in colours) < 0.7
    assert len(_tint_pairs(list(plt.get_cmap("tab20").colors))) > 5  # the check sees them
    # Neighbours in the run order (one family's rows sit together) never share a colour.
    assert all(a[0] != b[0] for a, b in itertools.pairwise(styles))


@pytest.fixture
def crowded():
    """15 rows, many within a percent of each other and three at one point, as a quick study's
    rows are: drs and balanced+posthoc equal to balanced."""
    rng = np.random.default_rng(0)
    points = {name: (0.40 + 0.03 * rng.random(), 0.30 + 0.02 * rng.random()) for name in NAMES}
    points["drs"] = points["balanced+posthoc"] = points["balanced"]
    figure = tradeoff_figure(_summary(points))
    yield figure
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_every_point_is_named_once_and_shared_points_share_one_label(crowded):
    axes = crowded.axes[0]
    labels = [t.get_text() for t in axes.texts]
    assert "balanced = drs = balanced+posthoc" in labels
    named = [name for label in labels for name in label.split(" = ")]
    assert sorted(named) == sorted(NAMES)
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == NAMES


def test_labels_of_a_crowded_plot_do_not_overlap(crowded):
    renderer = crowded.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in crowded.axes[0].texts]
    assert len(boxes) == 13
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


def _predictions():
    from balancer.study._metrics import Predictions

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    probs = {}
    for name, sharp in (("plain", 1.0), ("balanced", 3.0)):
        for seed in (0, 1):
            logits = rng.normal(size=(300, 3)) * sharp
            logits[np.arange(300), labels] += sharp
            exp = np.exp(logits - logits.max(1, keepdims=True))
            probs[(name, seed)] = {"test": exp / exp.sum(1, keepdims=True)}
    return Predictions({"test": labels, "val": labels}, probs), labels


def test_reliability_panels_show_counts_per_bin_and_their_ece():
    import matplotlib.pyplot as plt

    from balancer.study._metrics import expected_calibration_error

    predictions, labels = _predictions()
    figure = reliability_figure(predictions, ["plain", "balanced"], 10)
    for ax, name in zip(figure.axes, ["plain", "balanced"], strict=False):
        pooled = np.concatenate([predictions.probs[(name, s)]["test"] for s in (0, 1)])
        ece = expected_calibration_error(pooled, np.concatenate([labels, labels]), bins=10)
        assert ax.get_title() == f"{name}: ECE {ece:.3f}"
        # The count above each non-empty bin, adding up to every pooled prediction, and the
        # share bars adding up to 1.
        confidence = pooled.max(1)
        expected = np.bincount(np.clip(np.ceil(confidence * 10).astype(int) - 1, 0, 9),
                               minlength=10)
        assert [int(t.get_text()) for t in ax.texts] == expected[expected > 0].tolist()
        shares = [p.get_height() for p in ax.patches if p.get_gid() == "share"]
        assert len(shares) == 10
        np.testing.assert_allclose(sum(shares), 1.0)
    assert "count above each bin" in figure._suptitle.get_text()
    plt.close(figure)
