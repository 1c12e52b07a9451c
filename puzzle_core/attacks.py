"""Adversarial evaluation: FGSM and PGD in pixel space (inputs in [0, 1]).

The model takes normalised inputs; ``mean``/``std`` map pixels to what it takes.  Puzzle Mix
reports FGSM error at eps 8/255 on CIFAR-100 (4/255 on Tiny-ImageNet) and, in Table 8, PGD with
7 steps of 2/255 and a random start (docs/reference-implementation.md §1c, §1b #19)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._checks import check_batch, check_rank


def _normaliser(mean: Sequence[float] | None, std: Sequence[float] | None, x: torch.Tensor):
    if mean is None or std is None:
        return lambda v: v
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return lambda v: (v - m) / s


def _check(x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    check_rank("x", x, 4, "(B, C, H, W)")
    check_batch("y", y, x.shape[0])
    if not 0 <= eps <= 1:
        raise ValueError(f"eps must be in [0, 1] (pixel scale), got {eps}")
    if x.min() < 0 or x.max() > 1:
        raise ValueError("x must be in pixel space [0, 1]")


def _input_grad(model, normalise, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(normalise(x_adv)), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
    return grad


def fgsm(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """x_adv = clip_[0,1](x + eps sign(grad_x CE(f(x), y))) (Goodfellow et al. 2015; no random
    start, as the reference ``validate``).  x (B, C, H, W) in [0, 1] -> same."""
    _check(x, y, eps)
    normalise = _normaliser(mean, std, x)
    grad = _input_grad(model, normalise, x, y)
    return torch.clamp(x + eps * grad.sign(), 0, 1).detach()


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step: float,
    iters: int,
    *,
    random_start: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on CE within the L_inf ball of radius eps (Madry et al. 2018):
    optional uniform random start, ``iters`` signed steps of size ``step``, each projected to
    the ball and to [0, 1].  x (B, C, H, W) in [0, 1] -> same."""
    _check(x, y, eps)
    if iters < 1 or step <= 0:
        raise ValueError(f"iters must be >= 1 and step > 0, got {iters}, {step}")
    normalise = _normaliser(mean, std, x)
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1
        x_adv = torch.clamp(x + eps * noise, 0, 1)
    for _ in range(iters):
        grad = _input_grad(model, normalise, x_adv, y)
        x_adv = x_adv + step * grad.sign()
        x_adv = torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0, 1)
    return x_adv.detach()
