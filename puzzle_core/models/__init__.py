"""Model zoo: the architectures of the Puzzle Mix experiments (as the official code builds them)
and small CPU-scale networks, all with one manifold-mixup hook.

Registry
--------
``build_model(name, num_classes, in_channels=3, stem="cifar")`` with ``name`` in
``MODEL_NAMES``:

======================  =====================================================  ==============
name                    architecture                                           params (K=100)
======================  =====================================================  ==============
``preactresnet18``      PreActResNet18 of the reference code (CIFAR/Tiny)          11,217,316
``preactresnet18_w16``  the same at width 16 (fast CPU stand-in)                       712,372
``wrn28_10``            WRN-28-10 of the reference code (CIFAR/Tiny)               36,546,980
``resnet50``            torchvision ResNet-50 (ImageNet, Table 5)                  23,712,932
``resnet18``            torchvision ResNet-18 (fine-grained, GuidedMixup 3/7/8)    11,227,812
``resnet8``             CIFAR ResNet-8 (He et al.; fastest)                             81,140
``resnet20``            CIFAR ResNet-20 (He et al.)                                    275,572
======================  =====================================================  ==============

``stem="cifar"``: first conv stride 1 (32x32 inputs; also 28x28 grey with ``in_channels=1``);
``stem="tiny"``: first conv stride 2 (Tiny-ImageNet 64x64, as the reference).  ResNet-50 always has
torchvision's ImageNet stem (7x7/2 conv + max-pool) and ignores ``stem`` (still validated); so
does ResNet-18.
Measured CPU step times are in :mod:`puzzle_core.models.small`.

The manifold-mixup hook
-----------------------
Every model here implements::

    forward(x, mix_layer: int | None = None, mix_fn: Callable[[Tensor], Tensor] | None = None)

and has a class attribute ``mix_layers: tuple[int, ...]`` listing the indices it supports.  Index 0
is the input (before the first conv); 1 is after the stem and the first stage (``layer1``); 2 after
the second stage; 3 after the third.  When ``mix_layer == k`` the activation ``h`` (B, C, H, W) at
that point is replaced by ``mix_fn(h)`` and the forward continues; with both left as None the call
is a plain forward.  A ``mix_layer`` not in ``mix_layers`` raises ``ValueError``, as does passing
only one of the two.  The models know nothing else about mixing: the mixing method (input mixup,
manifold mixup, Puzzle Mix at layer 0, ...) lives in the ``mix_fn`` closure, which typically
captures the partner permutation and lambda and returns ``lam * h + (1 - lam) * h[perm]``.

Using your own model
--------------------
Any ``nn.Module`` can opt in by implementing the same two things: a ``mix_layers`` tuple and the
``forward(x, mix_layer=None, mix_fn=None)`` signature, calling ``h = mix_fn(h)`` at the points it
numbers (index 0 = the input, so any model supports at least ``mix_layers = (0,)`` by applying
``mix_fn`` to ``x`` first).  A minimal template::

    class MyNet(nn.Module):
        mix_layers = (0, 1)

        def forward(self, x, mix_layer=None, mix_fn=None):
            if mix_layer is not None and mix_layer not in self.mix_layers:
                raise ValueError(f"mix_layer must be one of {self.mix_layers}")
            if mix_layer == 0:
                x = mix_fn(x)
            h = self.body(x)
            if mix_layer == 1:
                h = mix_fn(h)
            return self.head(h)

Input-only methods (Puzzle Mix, CutMix, mixup) need no hook at all: mix the batch, then call the
model plainly (or pass ``mix_layer=0``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ._common import STEMS, MixFn, check_model_args, stem_stride
from .preact_resnet import PreActBlock, PreActResNet18, preactresnet18, preactresnet18_w16
from .resnet import ResNet18, ResNet50, TorchvisionResNet, resnet18, resnet50
from .small import BasicBlock, CifarResNet, resnet8, resnet20
from .wide_resnet import WideBasic, WideResNet, wrn28_10


def _resnet50(num_classes: int, *, in_channels: int = 3, stem: str = "cifar") -> nn.Module:
    stem_stride(stem)  # validate only: ResNet-50 keeps torchvision's ImageNet stem
    return resnet50(num_classes, in_channels=in_channels)


def _resnet18(num_classes: int, *, in_channels: int = 3, stem: str = "cifar") -> nn.Module:
    stem_stride(stem)  # validate only: ResNet-18 keeps torchvision's ImageNet stem
    return resnet18(num_classes, in_channels=in_channels)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "preactresnet18": preactresnet18,
    "preactresnet18_w16": preactresnet18_w16,
    "wrn28_10": wrn28_10,
    "resnet50": _resnet50,
    "resnet18": _resnet18,
    "resnet8": resnet8,
    "resnet20": resnet20,
}

MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(
    name: str, num_classes: int, *, in_channels: int = 3, stem: str = "cifar"
) -> nn.Module:
    """Build a freshly initialised model of the zoo.

    Args:
      name: one of ``MODEL_NAMES``.
      num_classes: K, the number of logits.
      in_channels: input channels (3 RGB, 1 grey).
      stem: ``"cifar"`` (first conv stride 1) or ``"tiny"`` (stride 2, Tiny-ImageNet 64x64);
        ignored by ``resnet50`` and ``resnet18``.

    Returns a module with ``forward(x, mix_layer=None, mix_fn=None)`` mapping x (B, in_channels,
    H, W) to logits (B, num_classes), and ``mix_layers`` (see the module docstring).
    Raises ``ValueError`` naming the argument for an unknown name, a bad stem, num_classes or
    in_channels.
    """
    if name not in _BUILDERS:
        raise ValueError(f"name must be one of {list(MODEL_NAMES)}, got {name!r}")
    check_model_args(num_classes, in_channels)
    stem_stride(stem)
    return _BUILDERS[name](num_classes, in_channels=in_channels, stem=stem)


__all__ = [
    "MODEL_NAMES",
    "STEMS",
    "BasicBlock",
    "CifarResNet",
    "MixFn",
    "PreActBlock",
    "PreActResNet18",
    "ResNet18",
    "ResNet50",
    "TorchvisionResNet",
    "WideBasic",
    "WideResNet",
    "build_model",
    "preactresnet18",
    "preactresnet18_w16",
    "resnet18",
    "resnet20",
    "resnet50",
    "resnet8",
    "wrn28_10",
]
