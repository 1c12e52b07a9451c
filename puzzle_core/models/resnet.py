"""ResNet-50 for ImageNet (Table 5) and ResNet-18 for the fine-grained data sets (GuidedMixup
Tables 3, 7 and 8): torchvision's ``resnet50`` / ``resnet18`` (``weights=None``, trained from
scratch as in GuidedMixup's FGVC code, docs/baselines.md §8.6) with the manifold-mixup hook.

The torchvision modules are adopted as direct children, so ``state_dict()`` keys are exactly
torchvision's (``conv1.weight``, ``layer1.0.conv1.weight``, ..., ``fc.bias``) and torchvision
checkpoints load unchanged.  torchvision is imported only when a ResNet-50 is built.

The reference ``imagenet_fast/`` initialisation tweaks (last BN gamma of each block zeroed, fc
~ N(0, 0.01); docs/reference-implementation.md §1c) belong to the training recipe;
``zero_init_residual=True`` passes the first one to torchvision.

Shapes (224x224 input): x (B, C_in, 224, 224) -> stem (conv 7x7/2, BN, ReLU, max-pool 3x3/2)
(B, 64, 56, 56) -> layer1 (B, 256, 56, 56) -> layer2 (B, 512, 28, 28) -> layer3 (B, 1024, 14, 14)
-> layer4 (B, 2048, 7, 7) -> pool (B, 2048) -> logits (B, K).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from ._common import MixFn, check_model_args, staged_features


class TorchvisionResNet(nn.Module):
    """A torchvision ImageNet ResNet (``arch``: ``"resnet18"`` or ``"resnet50"``) with the hook.

    Args:
      num_classes: K (torchvision's fc output).
      in_channels: input channels; other than 3 replaces the 7x7 stem conv by a fresh one with
        torchvision's init (kaiming normal, fan_out).
      zero_init_residual: forwarded to torchvision (zero gamma of each block's last BN).

    ``forward(x, mix_layer=None, mix_fn=None)``: x (B, in_channels, H, W) -> logits (B, K).
    ``mix_layers = (0, 1, 2, 3)``: 0 = input, 1 = after the stem + layer1, 2 = after layer2,
    3 = after layer3.
    """

    mix_layers: tuple[int, ...] = (0, 1, 2, 3)

    arch = "resnet50"

    def __init__(
        self, num_classes: int, *, in_channels: int = 3, zero_init_residual: bool = False
    ) -> None:
        super().__init__()
        check_model_args(num_classes, in_channels)
        import torchvision.models  # lazy: torchvision is optional

        if self.arch not in ("resnet18", "resnet50"):
            raise ValueError(f"arch must be 'resnet18' or 'resnet50', got {self.arch!r}")
        build = getattr(torchvision.models, self.arch)
        net = build(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
        self.num_classes = num_classes
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        # adopt torchvision's children in their order so state_dict keys match torchvision's
        for name, module in net.named_children():
            self.add_module(name, module)

    def forward_features(
        self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None
    ) -> Tensor:
        """x: (B, in_channels, H, W) -> the last feature map before pooling (B, C, h, w), with
        the manifold hook (the CAM source for SnapMix); see the class docstring."""
        stages = (self.layer1, self.layer2, self.layer3, self.layer4)
        out = staged_features(
            self.mix_layers,
            x,
            lambda h: self.maxpool(self.relu(self.bn1(self.conv1(h)))),
            stages,
            mix_layer,
            mix_fn,
        )
        return out

    def forward(
        self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None
    ) -> Tensor:
        """x: (B, in_channels, H, W) -> logits (B, num_classes); see the class docstring."""
        out = self.forward_features(x, mix_layer, mix_fn)
        out = torch.flatten(self.avgpool(out), 1)
        return self.fc(out)

    @property
    def classifier(self) -> nn.Linear:
        """The final linear layer (SnapMix's CAM weights)."""
        return self.fc


class ResNet50(TorchvisionResNet):
    """torchvision ResNet-50 with the hook (see :class:`TorchvisionResNet`)."""

    arch = "resnet50"


class ResNet18(TorchvisionResNet):
    """torchvision ResNet-18 with the hook (see :class:`TorchvisionResNet`): last feature map
    (B, 512, H/32, W/32); hook indices as ResNet-50's with 64 / 128 / 256 channels."""

    arch = "resnet18"


def resnet18(
    num_classes: int = 1000, *, in_channels: int = 3, zero_init_residual: bool = False
) -> ResNet18:
    """ResNet-18 (11,689,512 parameters at K=1000)."""
    return ResNet18(num_classes, in_channels=in_channels, zero_init_residual=zero_init_residual)


def resnet50(
    num_classes: int = 1000, *, in_channels: int = 3, zero_init_residual: bool = False
) -> ResNet50:
    """ResNet-50 (25,557,032 parameters at K=1000)."""
    return ResNet50(num_classes, in_channels=in_channels, zero_init_residual=zero_init_residual)
