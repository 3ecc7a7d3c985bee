"""Small study settings and command-line helpers shared by the study tests."""

from __future__ import annotations

import pytest
import torch

from balancer.__main__ import main

# A study small enough for a test: 160 BreastMNIST images, 2 epochs, 100 bootstrap replicates.
FAST = {"dataset": "breastmnist", "train_limit": 160, "epochs": 2, "batch_size": 32,
        "progress": False, "bootstrap": 100}


def usage_error(argv, capsys):
    """The message of a command line ``balancer`` refuses (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def tiny_own_data():
    """A user's own data for ``compare()``: train, validation and test splits of 600 random
    8-feature rows (class 1 rarer) and a model factory."""
    from torch import nn

    X = torch.randn(600, 8, generator=torch.Generator().manual_seed(0))
    y = (X[:, 0] > 1.0).long()
    splits = torch.utils.data.random_split(torch.utils.data.TensorDataset(X, y),
                                           [400, 100, 100],
                                           generator=torch.Generator().manual_seed(0))

    def model_fn(num_classes):
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, num_classes))

    return (*splits, model_fn)
