"""WRN-28-10 exactly as the official Puzzle Mix code uses it (``models/wide_resnet.py``;
docs/reference-implementation.md §1f).

Shapes (CIFAR stem, 32x32 input): x (B, C_in, 32, 32) -> conv1 (B, 16, 32, 32) -> layer1
(B, 160, 32, 32) -> layer2 (B, 320, 16, 16) -> layer3 (B, 640, 8, 8) -> BN-ReLU-pool (B, 640)
-> logits (B, K).  The Tiny stem (stride 2) maps 64x64 inputs to the same sizes.

Parameter counts: 36,546,980 (K=100), 36,611,080 (K=200), as the reference.

Quirk kept on purpose: the final BatchNorm is built with ``momentum=0.9``.  In PyTorch's convention
(running = (1 - m) * running + m * batch) this makes the running statistics follow the last few
batches almost entirely -- most likely a TensorFlow-convention slip in the reference, but it is
what produced the paper's WRN numbers, so it is reproduced here.
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


class WideBasic(nn.Module):
    """The reference ``wide_basic`` block: BN-ReLU-conv3x3(bias)-BN-ReLU-conv3x3(bias, stride).

    The stride sits on the *second* conv; the 1x1 conv (bias) shortcut, present only when the shape
    changes, is applied to the raw x (reference code; docs/reference-implementation.md §1f).  No
    dropout (removed in the reference).
    x: (B, in_planes, H, W) -> (B, planes, H / stride, W / stride).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        # reference code: the second conv carries the stride, convs have biases
        # (docs/reference-implementation.md §1f)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            # reference code: 1x1 conv with bias on the raw x (docs/reference-implementation.md §1f)
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(PooledClassifier):
    """Wide ResNet (depth 6n+4, widening k) of the official code, with the manifold-mixup hook.

    Args:
      num_classes: K.
      depth, widen_factor: 28 and 10 for WRN-28-10 (stages 16k, 32k, 64k of n = (depth-4)/6
        blocks each).
      in_channels: input channels (the reference hard-codes 3).
      stem: ``"cifar"`` (first conv stride 1) or ``"tiny"`` (stride 2).

    ``forward(x, mix_layer=None, mix_fn=None)``: x (B, in_channels, H, W) -> logits (B, K).
    ``mix_layers = (0, 1, 2, 3)``: 0 = input, 1 = after conv1 + layer1, 2 = after layer2,
    3 = after layer3 (before the final BN-ReLU; the reference's unreachable ``layer_mix == 3``).
    """

    mix_layers: tuple[int, ...] = (0, 1, 2, 3)
    block = WideBasic
    # reference code: avg_pool2d(8) then linear (docs/reference-implementation.md §1f)
    pool_size = 8

    def __init__(
        self,
        num_classes: int,
        *,
        depth: int = 28,
        widen_factor: int = 10,
        in_channels: int = 3,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be an integer 6n+4 with n >= 1, got {depth!r}")
        if not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be an integer >= 1, got {widen_factor!r}")
        n = (depth - 4) // 6
        stages = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.num_classes = num_classes
        # reference code: conv3x3 with bias=True, stride 1 (CIFAR) or 2 (Tiny)
        # (docs/reference-implementation.md §1f, §1c)
        self.conv1 = nn.Conv2d(
            in_channels, stages[0], 3, stride=stem_stride(stem), padding=1, bias=True
        )
        self.in_planes = stages[0]
        self.layer1 = self.make_stage(stages[1], n, stride=1)
        self.layer2 = self.make_stage(stages[2], n, stride=2)
        self.layer3 = self.make_stage(stages[3], n, stride=2)
        # reference code: final BN with momentum=0.9 (PyTorch convention: fast update;
        # docs/reference-implementation.md §1f)
        self.bn1 = nn.BatchNorm2d(stages[3], momentum=0.9)
        self.linear = nn.Linear(stages[3], num_classes)
        # reference code: conv_init is defined but never applied -> PyTorch default init
        # (docs/reference-implementation.md §1f)

    def forward_features(
        self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None
    ) -> Tensor:
        """x: (B, in_channels, H, W) -> the last feature map before pooling (B, C, h, w), with
        the manifold hook (the CAM source for SnapMix); see the class docstring."""
        stages = (self.layer1, self.layer2, self.layer3)
        out = staged_features(self.mix_layers, x, self.conv1, stages, mix_layer, mix_fn)
        out = F.relu(self.bn1(out))
        return out


def wrn28_10(num_classes: int, *, in_channels: int = 3, stem: str = "cifar") -> WideResNet:
    """The reference WRN-28-10 (36.5M parameters at K=100)."""
    return WideResNet(num_classes, depth=28, widen_factor=10, in_channels=in_channels, stem=stem)
