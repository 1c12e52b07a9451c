"""The manifold-mixup hook shared by every model of the zoo.

A model supporting the hook has ``forward(x, mix_layer=None, mix_fn=None)`` and a tuple
``mix_layers`` of the indices it supports.  Index 0 is the input (before the first conv), index
k >= 1 the output of the k-th stage (index 1 includes the stem).  At ``mix_layer == k`` the
activation ``h`` is replaced by ``mix_fn(h)`` and the forward continues.  The models know nothing
else about mixing.  Also here: the stem stride, argument checks and the global average pool.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MixFn = Callable[[Tensor], Tensor]

STEMS = ("cifar", "tiny")


def stem_stride(stem: str) -> int:
    """Stride of the first conv: 1 for ``"cifar"`` (32x32), 2 for ``"tiny"`` (Tiny-ImageNet 64x64,
    reference ``main.py`` passes stride=2 for tiny-imagenet;
    docs/reference-implementation.md §1c)."""
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {list(STEMS)}, got {stem!r}")
    return 1 if stem == "cifar" else 2


def check_model_args(num_classes: int, in_channels: int) -> None:
    """``ValueError`` naming the argument unless both are integers >= 1."""
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def check_mix_args(
    mix_layers: tuple[int, ...], mix_layer: int | None, mix_fn: MixFn | None
) -> None:
    """Validate the hook arguments: both None (plain forward), or a supported layer and a
    callable; ``ValueError`` naming the argument otherwise."""
    if mix_layer is None:
        if mix_fn is not None:
            raise ValueError("mix_fn was given but mix_layer is None; pass both or neither")
        return
    if isinstance(mix_layer, bool) or not isinstance(mix_layer, int) or mix_layer not in mix_layers:
        raise ValueError(f"mix_layer must be None or one of {list(mix_layers)}, got {mix_layer!r}")
    if not callable(mix_fn):
        raise ValueError(
            f"mix_fn must be a callable Tensor -> Tensor when mix_layer is set, got {mix_fn!r}"
        )


def maybe_mix(h: Tensor, k: int, mix_layer: int | None, mix_fn: MixFn | None) -> Tensor:
    """``mix_fn(h)`` if ``k == mix_layer`` else ``h`` unchanged.  h: (B, C, H, W)."""
    if mix_layer != k:
        return h
    assert mix_fn is not None  # guaranteed by check_mix_args
    out = mix_fn(h)
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"mix_fn must return a torch.Tensor, got {type(out).__name__}")
    return out


def staged_features(
    model_mix_layers: tuple[int, ...],
    x: Tensor,
    stem: Callable[[Tensor], Tensor],
    stages: tuple[Callable[[Tensor], Tensor], ...],
    mix_layer: int | None,
    mix_fn: MixFn | None,
) -> Tensor:
    """The hook's walk through a network: index 0 = the input, then the stem and stage 1 give
    index 1, each further stage k gives index k.  -> the output of the last stage."""
    check_mix_args(model_mix_layers, mix_layer, mix_fn)
    out = stem(maybe_mix(x, 0, mix_layer, mix_fn))
    for k, stage in enumerate(stages, 1):
        out = maybe_mix(stage(out), k, mix_layer, mix_fn)
    return out


def global_avg_pool(h: Tensor, ref_size: int) -> Tensor:
    """Global average pool (B, C, H, W) -> (B, C).

    The reference code calls ``F.avg_pool2d(h, ref_size)``, which only equals a global pool when
    the map is ``ref_size`` x ``ref_size`` (the 32x32 CIFAR / 64x64 Tiny cases).  That exact call
    is used for such maps (bit-identical to the reference); any other size (e.g. 28x28 inputs on
    a WRN) falls back to ``adaptive_avg_pool2d(h, 1)``.
    """
    if h.shape[-2:] == (ref_size, ref_size):
        h = F.avg_pool2d(h, ref_size)
    else:
        h = F.adaptive_avg_pool2d(h, 1)
    return h.flatten(1)


class PooledClassifier(nn.Module):
    """Shared head: logits = linear(global_avg_pool(forward_features(x), pool_size)).  Subclasses
    define ``forward_features`` (with the hook), ``linear`` and the class attribute
    ``pool_size`` (the reference ``avg_pool2d`` size: 4 for PreActResNet18, 8 for WRN / ResNet)."""

    pool_size: int = 8
    linear: nn.Linear
    block: type[nn.Module]  # the residual block, built as block(in_planes, planes, stride)
    in_planes: int

    def make_stage(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        """``num_blocks`` blocks, the first with ``stride``; tracks ``in_planes``."""
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(self.block(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward_features(
        self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None
    ) -> Tensor:
        raise NotImplementedError

    def forward(
        self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None
    ) -> Tensor:
        """x: (B, in_channels, H, W) -> logits (B, num_classes); see the class docstring."""
        out = self.forward_features(x, mix_layer, mix_fn)
        return self.linear(global_avg_pool(out, self.pool_size))

    @property
    def classifier(self) -> nn.Linear:
        """The final linear layer (SnapMix's CAM weights)."""
        return self.linear
