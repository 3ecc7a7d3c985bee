"""--finetune-batchnorm with --multilabel: label-balanced+finetune's fine-tune phase applies
``balancer.set_train_mode(model, phase, batchnorm=...)`` as the single-label training does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from torch import nn

import balancer.study._multilabel as multilabel
from balancer.__main__ import main
from balancer.study import MultiLabelStudyConfig, run_study


def _npz(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 3)) < [0.4, 0.3, 0.25]).astype(int)
    X = Y @ rng.standard_normal((3, 4)) + rng.standard_normal((n, 4))
    np.savez(path, X=X, Y=Y)
    return str(path)


def _config(data, **settings):
    return MultiLabelStudyConfig(data=data, seeds=(0,), epochs=3, finetune_epochs=1,
                                 batch_size=16, bootstrap=100, progress=False, **settings)


@pytest.mark.parametrize("policy", ["frozen", "train"])
def test_the_finetune_phase_sets_batchnorm_as_asked(tmp_path, monkeypatch, policy):
    seen = []
    real = multilabel.set_train_mode

    def spy(model, phase, *, batchnorm):
        real(model, phase, batchnorm=batchnorm)
        norms = [m.training for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        seen.append((phase, batchnorm, norms))

    monkeypatch.setattr(multilabel, "set_train_mode", spy)
    run_study(_config(_npz(tmp_path / "m.npz"), strategies=("label-balanced+finetune",),
                      finetune_batchnorm=policy))
    assert [phase for phase, _, _ in seen] == ["balanced", "balanced", "finetune"]
    assert all(batchnorm == policy for _, batchnorm, _ in seen)
    # BatchNorm layers are in eval mode in the fine-tune phase exactly when frozen.
    assert seen[-1][2] and all(training == (policy == "train") for training in seen[-1][2])
    assert all(all(norms) for _, _, norms in seen[:-1])


def test_the_flag_is_taken_with_multilabel_and_changes_only_the_finetune_row(tmp_path):
    data = _npz(tmp_path / "m.npz")
    values = {}
    for policy in ("train", "frozen"):
        out = tmp_path / policy
        assert main(["study", "--multilabel", "--data", data, "--seeds", "0", "--epochs", "3",
                     "--finetune-epochs", "1", "--batch-size", "16", "--bootstrap", "100",
                     "--strategies", "plain,label-balanced+finetune", "--finetune-batchnorm",
                     policy, "--no-progress", "--out", str(out)]) == 0
        saved = json.loads((out / "config.json").read_text())
        assert saved.get("config", saved)["finetune_batchnorm"] == policy
        results = pd.read_csv(out / "results.csv")
        test = results[results["split"].eq("test")]
        values[policy] = test.set_index(["strategy", "metric"])["value"]
    assert values["train"].loc["plain"].equals(values["frozen"].loc["plain"])
    assert not np.allclose(values["train"].loc["label-balanced+finetune"].to_numpy(),
                           values["frozen"].loc["label-balanced+finetune"].to_numpy(),
                           equal_nan=True)


@pytest.mark.parametrize(("value", "error"), [("eval", ValueError), (0, TypeError)])
def test_a_bad_value_is_refused(value, error):
    with pytest.raises(error, match=f"batchnorm should be one of .*batchnorm={value!r}"):
        MultiLabelStudyConfig(finetune_batchnorm=value)
