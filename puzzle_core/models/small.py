"""Small, fast networks for CPU-scale runs (not part of the paper's experiments).

``resnet8`` / ``resnet20``: the CIFAR ResNets of He et al. (2016, Sec. 4.2): conv3x3 16 - BN -
ReLU, three stages of n post-activation basic blocks (16/32/64 channels, strides 1/2/2), global
average pool, linear; depth 6n+2.  Shortcuts are option A (parameter-free: stride-2 subsampling
and zero-padded channels), as in that paper.  PyTorch default init, like the reference models.

PreActResNet18 at width 16 (``preactresnet18_w16``, in :mod:`.preact_resnet`) is the other CPU
stand-in: the reference architecture, narrower.

Measured on a 2-core AMD EPYC project machine (``torch.set_num_threads(1)``,
``torch.set_flush_denormal(True)``, torch 2.14.1 CUDA wheel run on the CPU, default memory
format).  One step = forward + cross-entropy + backward + SGD ``step()`` (momentum 0.9, nesterov,
wd 1e-4), batch 100 of 3x32x32, K=100; median of 12 steps (PreActResNet18: 4) after 2 warm-up
steps, models interleaved; two runs on an otherwise idle machine:

=====================  ==========  ==================  ==========================
model                  parameters  ms / step (2 runs)  relative to PreActResNet18
=====================  ==========  ==================  ==========================
resnet8                    81,140        261, 265               0.036
resnet20                  275,572        722, 770               0.10
preactresnet18_w16        712,372        633, 618               0.085
preactresnet18         11,217,316      7,191, 7,516             1
=====================  ==========  ==================  ==========================

Two earlier runs while other sessions loaded both cores gave about the same (resnet8 245-280,
preactresnet18_w16 635-717 ms).  The absolute figures are about 3x the ones measured earlier on
the project's setup machine for the same configurations (PreActResNet18 2,400 ms, width 16
226 ms), so they vary between machines; the ratios measured side by side are the transferable
part.  In one side-by-side check ``channels_last`` (model and input) was 25-30% faster for both
small networks.

Parameter counts are for K=100 (subtract 90 x (width of the last stage + 1) for K=10:
resnet8 / resnet20 75,290 / 269,722, preactresnet18_w16 700,762).
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


class BasicBlock(nn.Module):
    """Post-activation basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, + shortcut, ReLU.

    Option-A shortcut when the shape changes: x[:, :, ::stride, ::stride] zero-padded to ``planes``
    channels (He et al. 2016, CIFAR ResNets).  x: (B, in_planes, H, W) -> (B, planes, H/s, W/s).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        if planes < in_planes:
            raise ValueError(f"planes must be >= in_planes, got {planes} < {in_planes}")
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self._shortcut(x))


class CifarResNet(PooledClassifier):
    """CIFAR ResNet of depth 6n+2 with the manifold-mixup hook.

    Args:
      num_classes: K.
      depth: 6n+2 (8, 14, 20, 32, ...).
      in_channels: input channels.
      stem: ``"cifar"`` (first conv stride 1) or ``"tiny"`` (stride 2, 64x64 inputs).
      width: channels of the first stage (stages w, 2w, 4w); 16 in He et al.

    ``forward(x, mix_layer=None, mix_fn=None)``: x (B, in_channels, H, W) -> logits (B, K).
    Shapes at 32x32, width 16: stem (B, 16, 32, 32) -> layer1 (B, 16, 32, 32) -> layer2
    (B, 32, 16, 16) -> layer3 (B, 64, 8, 8) -> pool (B, 64).
    ``mix_layers = (0, 1, 2, 3)``: 0 = input, 1 = after the stem + layer1, 2 = after layer2,
    3 = after layer3 (before pooling).
    """

    mix_layers: tuple[int, ...] = (0, 1, 2, 3)
    block = BasicBlock
    pool_size = 8

    def __init__(
        self,
        num_classes: int,
        *,
        depth: int = 20,
        in_channels: int = 3,
        stem: str = "cifar",
        width: int = 16,
    ) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be an integer 6n+2 with n >= 1, got {depth!r}")
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width!r}")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(
            in_channels, width, 3, stride=stem_stride(stem), padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(width)
        self.in_planes = width
        self.layer1 = self.make_stage(width, n, stride=1)
        self.layer2 = self.make_stage(2 * width, n, stride=2)
        self.layer3 = self.make_stage(4 * width, n, stride=2)
        self.linear = nn.Linear(4 * width, num_classes)

    def forward_features(
        self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None
    ) -> Tensor:
        """x: (B, in_channels, H, W) -> the last feature map before pooling (B, C, h, w), with
        the manifold hook (the CAM source for SnapMix); see the class docstring."""
        stages = (self.layer1, self.layer2, self.layer3)
        out = staged_features(
            self.mix_layers, x, lambda h: F.relu(self.bn1(self.conv1(h))), stages, mix_layer, mix_fn
        )
        return out


def resnet8(num_classes: int, *, in_channels: int = 3, stem: str = "cifar") -> CifarResNet:
    """CIFAR ResNet-8 (n = 1): the fastest network of the zoo; see the module table."""
    return CifarResNet(num_classes, depth=8, in_channels=in_channels, stem=stem)


def resnet20(num_classes: int, *, in_channels: int = 3, stem: str = "cifar") -> CifarResNet:
    """CIFAR ResNet-20 (n = 3); see the module table."""
    return CifarResNet(num_classes, depth=20, in_channels=in_channels, stem=stem)
