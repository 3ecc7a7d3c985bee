"""The study's model: a small CNN for 28x28 images, initialised from an explicit generator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MLP", "SmallCNN", "init_from"]


class CosineHead(nn.Module):
    r"""Linear classifier on unit-normalised features and weights: :math:`z_c = \cos\theta_c`.

    LDAM (Cao et al. 2019, https://arxiv.org/abs/1906.07413) is defined on these cosines, scaled
    by ``s`` inside the loss; the paper's models use this head with LDAM.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))

    def forward(self, features: Tensor) -> Tensor:
        return F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).t()


@torch.no_grad()
def init_from(model: nn.Module, generator: torch.Generator) -> None:
    """Kaiming-uniform weights (torch's default rule) and zero biases, drawn from ``generator``.

    torch's own initialisation draws from the global RNG; this draws from ``generator`` so that
    a run is a function of its seed alone.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, CosineHead)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks (16, 32, 64 channels, batch norm, ReLU), global pooling, a linear head.

    The first block has stride 2 and the second max-pools, so a 28x28 image is seen at 14x14
    and 7x7: about 24k parameters and 1.9M multiply-adds per image, half the time of a
    full-resolution first block for the same accuracy on the shipped data, and a few seconds per
    training run on one CPU core.

    Args:
        in_channels: 1 (grey) or 3 (colour).
        num_classes: outputs.
        width: channels of the first block (the others are 2x and 4x).
        cosine_head: use :class:`CosineHead` (for LDAM) instead of ``nn.Linear``.
        generator: the source of the initial weights (Kaiming-uniform, as torch's default).
    """

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 16,
                 cosine_head: bool = False, generator: torch.Generator) -> None:
        super().__init__()

        def block(cin: int, cout: int, *, stride: int = 1, pool: bool = False) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False),
                                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            return [*layers, nn.MaxPool2d(2)] if pool else layers

        self.backbone = nn.Sequential(
            *block(in_channels, width, stride=2),
            *block(width, 2 * width, pool=True),
            *block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head: nn.Module = (CosineHead(4 * width, num_classes) if cosine_head
                                else nn.Linear(4 * width, num_classes))
        self._init(generator)

    def _init(self, generator: torch.Generator) -> None:
        init_from(self, generator)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.backbone(images))


class MLP(nn.Module):
    """The default model for tabular data: two hidden layers of ``width`` units (batch norm, ReLU).

    Args:
        in_features: feature columns (after one-hot encoding).
        num_classes: outputs.
        width: units per hidden layer.
        cosine_head: use :class:`CosineHead` (for LDAM) instead of ``nn.Linear``.
        generator: the source of the initial weights.
    """

    def __init__(self, in_features: int, num_classes: int, *, width: int = 64,
                 cosine_head: bool = False, generator: torch.Generator) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(in_features, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
        )
        self.head: nn.Module = (CosineHead(width, num_classes) if cosine_head
                                else nn.Linear(width, num_classes))
        init_from(self, generator)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.backbone(features))
