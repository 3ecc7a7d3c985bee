"""``benchmarks/bench_peers.py`` against MONAI: every loss pair with the same formula agrees in
value and gradient, and each MONAI peer gets a ratio (timings themselves are not checked)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("monai")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_peers

ROW = re.compile(r"^(?P<title>.+?)\s+ours/peer\s+(?P<ratio>[\d.]+)\s+\((?P<agreement>.*)\)")


def test_monai_peers_agree_where_the_formulas_match(capsys):
    bench_peers.bench_monai([(256, 7)], rounds=1)
    rows = [ROW.match(line) for line in capsys.readouterr().out.splitlines()]
    assert all(rows) and len(rows) == 4
    titles = [row["title"] for row in rows]
    assert any("AUCMLoss" in title for title in titles)
    assert any("FocalLoss(alpha)" in title for title in titles)
    for row in rows:
        assert float(row["ratio"]) > 0
        if "AUCMLoss" in row["title"]:
            assert row["agreement"] == "different formulas: values not compared"
            continue
        value, grad = map(float, re.findall(r"diff\| ([\d.e+-]+)", row["agreement"]))
        assert value < 1e-3 and grad < 1e-5, row.group(0)
