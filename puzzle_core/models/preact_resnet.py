"""PreActResNet18 exactly as the official Puzzle Mix code uses it (``models/preresnet.py``;
docs/reference-implementation.md §1f), plus a width option for CPU-scale runs.

Shapes (CIFAR stem, 32x32 input, width w): x (B, C_in, 32, 32) -> conv1 (B, w, 32, 32) -> layer1
(B, w, 32, 32) -> layer2 (B, 2w, 16, 16) -> layer3 (B, 4w, 8, 8) -> layer4 (B, 8w, 4, 4) -> pool
(B, 8w) -> logits (B, K).  The Tiny stem (stride 2) maps 64x64 inputs to the same sizes.

Parameter counts at width 64: 11,217,316 (K=100), 11,268,616 (K=200), as the reference.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    MixFn,
    PooledClassifier,
    check_model_args,
    staged_features,
    stem_stride,
)


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, no biases.

    The 1x1-conv shortcut (present only when the shape changes) is applied to the *pre-activated*
    input ``relu(bn1(x))``; the identity shortcut uses the raw x (reference code;
    docs/reference-implementation.md §1f).
    x: (B, in_planes, H, W) -> (B, planes, H / stride, W / stride).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            # reference code: 1x1 conv, no bias, no BN in the projection
            # (docs/reference-implementation.md §1f)
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        # reference code: projection shortcut on the pre-activated input
        # (docs/reference-implementation.md §1f)
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(PooledClassifier):
    """PreActResNet18 of the official code, with the manifold-mixup hook.

    Args:
      num_classes: K, size of the linear output.
      in_channels: input channels (3 RGB, 1 grey); the reference hard-codes 3.
      stem: ``"cifar"`` (first conv stride 1) or ``"tiny"`` (stride 2, Tiny-ImageNet 64x64).
      width: channels of the first stage (stages are w, 2w, 4w, 8w); 64 is the reference
        (whose ``initial_channels`` argument is effectively always 64;
        docs/reference-implementation.md §1f).

    ``forward(x, mix_layer=None, mix_fn=None)``: x (B, in_channels, H, W) -> logits (B, K).
    ``mix_layers = (0, 1, 2, 3)``: 0 = input, 1 = after conv1 + layer1, 2 = after layer2,
    3 = after layer3 (the reference's unreachable ``layer_mix == 3`` branch).
    """

    mix_layers: tuple[int, ...] = (0, 1, 2, 3)
    block = PreActBlock
    # reference: no final BN-ReLU, then avg_pool2d(4) and linear
    # (docs/reference-implementation.md §1f)
    pool_size = 4

    def __init__(
        self, num_classes: int, *, in_channels: int = 3, stem: str = "cifar", width: int = 64
    ) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        self.num_classes = num_classes
        self.width = width
        # reference code: conv3x3, no bias, stride 1 (CIFAR) or 2 (Tiny)
        # (docs/reference-implementation.md §1f, §1c)
        self.conv1 = nn.Conv2d(
            in_channels, width, 3, stride=stem_stride(stem), padding=1, bias=False
        )
        self.in_planes = width
        self.layer1 = self.make_stage(width, 2, stride=1)
        self.layer2 = self.make_stage(2 * width, 2, stride=2)
        self.layer3 = self.make_stage(4 * width, 2, stride=2)
        self.layer4 = self.make_stage(8 * width, 2, stride=2)
        self.linear = nn.Linear(8 * width, num_classes)
        # reference code: PyTorch default init, no dropout (docs/reference-implementation.md §1f)

    def forward_features(
        self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None
    ) -> Tensor:
        """x: (B, in_channels, H, W) -> the last feature map before pooling (B, C, h, w), with
        the manifold hook (the CAM source for SnapMix); see the class docstring."""
        stages = (self.layer1, self.layer2, self.layer3, self.layer4)
        out = staged_features(self.mix_layers, x, self.conv1, stages, mix_layer, mix_fn)
        return out


def preactresnet18(
    num_classes: int, *, in_channels: int = 3, stem: str = "cifar", width: int = 64
) -> PreActResNet18:
    """The reference PreActResNet18 (width 64, 11.2M parameters at K=100)."""
    return PreActResNet18(num_classes, in_channels=in_channels, stem=stem, width=width)


def preactresnet18_w16(
    num_classes: int, *, in_channels: int = 3, stem: str = "cifar"
) -> PreActResNet18:
    """PreActResNet18 at width 16 (stages 16/32/64/128): 0.71M parameters at K=100, the fast
    CPU stand-in; speed in :mod:`puzzle_core.models.small`."""
    return PreActResNet18(num_classes, in_channels=in_channels, stem=stem, width=16)
