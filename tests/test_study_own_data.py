"""On a user's own data (a --table, compare()) the study uses no shipped data set's record:
tuning prints the flags to pass, and compare() takes the library defaults, not RetinaMNIST's
tuned settings or its ordinal kappa."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from helpers.study import tiny_own_data

from balancer.__main__ import main


def test_tune_on_your_own_data_prints_the_flags_not_a_record_that_is_never_read(tmp_path,
                                                                                capsys):
    """The tuning run used to advise copying tuned.json to balancer/study/tuned/<dataset>.json
    for any data; that file is read back only for a shipped data set (load_tuned(None) is
    None), so for a --table the advice could never work. It now prints the flags."""
    from balancer.study._config import load_tuned

    rng = np.random.default_rng(0)
    y = (rng.random(240) < 0.25).astype(int)
    frame = pd.DataFrame({"a": rng.standard_normal(240) + y, "b": rng.standard_normal(240),
                          "y": y})
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert main(["study", "--tune", "--quick", "--table", str(tmp_path / "t.csv"),
                 "--label-col", "y", "--strategies", "plain,focal", "--no-posthoc",
                 "--no-progress", "--out", str(tmp_path / "tune")]) == 0
    printed = capsys.readouterr().out
    assert "<dataset>.json" not in printed and load_tuned(None) is None
    assert "to use these settings on this data, pass --focal-gamma " in printed


def test_compare_on_your_own_data_takes_no_retinamnist_record_and_no_kappa(tmp_path):
    """README: the tuned choices "are the defaults of the study on that data set", kappa is
    "for ordinal classes (--ordinal; on by default for RetinaMNIST)". A compare() config has
    no data set, which StudyConfig reads as the default RetinaMNIST: at the default budget a
    user's data got RetinaMNIST's tuned focal_gamma=0.5, drs/crt_epochs=6, a fixed post-hoc
    tau, and a quadratic weighted kappa as if its classes were retinopathy grades."""
    from balancer.study import compare
    from balancer.study._config import LIBRARY_DEFAULTS

    results = compare(*tiny_own_data(), strategies=("plain", "focal"), seeds=(0,), epochs=12,
                      out=tmp_path / "o")
    saved = json.loads((tmp_path / "o" / "study.json").read_text())
    assert saved["focal_gamma"] == LIBRARY_DEFAULTS["focal_gamma"]
    assert saved["posthoc_tau"] is None and saved["tuned_from"]["file"] is None
    assert not any("kappa" in metric for metric in set(results["metric"]))
    taus = results[(results["strategy"] == "plain+posthoc") & (results["metric"] == "posthoc_tau")]
    assert len(taus) == 1  # chosen per seed on validation, not RetinaMNIST's fixed 1.0
