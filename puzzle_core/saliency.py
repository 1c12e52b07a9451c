"""Saliency s(x) (Section 3): the gradient of the loss w.r.t. the input, reduced over channels,
from one batched backward pass; pooled to the mask grid and normalised to sum 1 per example."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from ._checks import check_batch, check_choice, check_rank


@dataclass(frozen=True)
class SaliencyResult:
    """saliency (B, H, W) >= 0; input_grad (B, C, H, W) = d loss / d x; loss () detached;
    logits (B, K) detached.  When a clean weight was given, ``weight * d loss / d theta`` has
    been accumulated into the parameters' ``.grad`` (the clean-input regulariser, Section 5)."""

    saliency: torch.Tensor
    input_grad: torch.Tensor
    loss: torch.Tensor
    logits: torch.Tensor


def reduce_gradient(grad: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W): l2 norm over channels (paper) or RMS (reference: sqrt(mean_c
    g^2) = l2 / sqrt(C); the constant cancels after normalisation)."""
    check_choice("norm", norm, ("l2", "rms"))
    sq = grad.pow(2)
    return (sq.sum(1) if norm == "l2" else sq.mean(1)).sqrt()


def compute_saliency(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    norm: str = "l2",
    mode: str = "eval",
    clean_weight: float = 0.0,
    loss_rows: int | None = None,
) -> SaliencyResult:
    """s(x) = || d loss(f(x), y) / d x ||_channels from one batched backward pass.

    x (B, C, H, W) as the model takes it (the reference differentiates w.r.t. the normalised
    input); y (B,) int labels or (B, K) soft targets; ``loss_fn`` defaults to the batch-mean
    cross-entropy (reference).  ``mode``: "eval" (reference with clean_lam = 0: BN running stats),
    "train" (reference with clean_lam > 0) or "keep"; the model's mode is restored afterwards.
    ``clean_weight`` > 0 accumulates clean_weight * grad_theta loss into the parameters' .grad in
    the same backward pass (the clean-input regulariser reuses the saliency pass, Section 5).
    ``loss_rows`` = n < B: only the first n rows make the reported loss, logits and the clean
    regulariser; the other rows only get their input gradient, on the same per-row scale
    (Algorithm 2 per pair: gradients at the noisy copies of some inputs).
    """
    check_rank("x", x, 4, "(B, C, H, W)")
    check_batch("y", y, x.shape[0])
    check_choice("mode", mode, ("eval", "train", "keep"))
    if clean_weight < 0:
        raise ValueError(f"clean_weight must be >= 0, got {clean_weight}")
    loss_fn = loss_fn or F.cross_entropy
    b = x.shape[0]
    n = b if loss_rows is None else loss_rows
    if not 1 <= n <= b:
        raise ValueError(f"loss_rows must be in [1, {b}], got {loss_rows}")
    was_training = model.training
    if mode != "keep":
        model.train(mode == "train")
    try:
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xg)
            loss = loss_fn(logits[:n], y[:n])
            if n < b:  # the extra rows: input gradients only, at the first rows' per-row scale
                total = loss + loss_fn(logits[n:], y[n:]) * ((b - n) / n)
                (grad,) = torch.autograd.grad(total, xg, retain_graph=clean_weight > 0)
                if clean_weight > 0:
                    (clean_weight * loss).backward()
                logits = logits[:n]
            elif clean_weight > 0:
                (clean_weight * loss).backward()
                grad = xg.grad / clean_weight
            else:
                (grad,) = torch.autograd.grad(loss, xg)
    finally:
        model.train(was_training)
    grad = grad.detach()
    return SaliencyResult(reduce_gradient(grad, norm), grad, loss.detach(), logits.detach())


def pool_saliency(saliency: torch.Tensor, grid: int | tuple[int, int]) -> torch.Tensor:
    """Average-pool s (B, H, W) to a (gh, gw) grid and normalise each example to sum 1 (the
    unary term of Eq. 4).  An all-zero map becomes uniform.  -> (B, gh, gw), float32 or wider."""
    check_rank("saliency", saliency, 3, "(B, H, W)")
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    _, h, w = saliency.shape
    if h % gh or w % gw:
        raise ValueError(f"grid {gh}x{gw} must divide the saliency size {h}x{w}")
    s = saliency if saliency.dtype in (torch.float32, torch.float64) else saliency.float()
    pooled = F.avg_pool2d(s.unsqueeze(1), (h // gh, w // gw)).squeeze(1)
    total = pooled.flatten(1).sum(1).reshape(-1, 1, 1)
    uniform = torch.full_like(pooled, 1.0 / (gh * gw))
    return torch.where(total > 0, pooled / torch.where(total > 0, total, 1.0), uniform)


def draw_grid_size(choices: Sequence[int], rng: np.random.Generator) -> int:
    """The mask grid side, uniform over ``choices`` per mini-batch (reference: {2, 4, 8, 16})."""
    return int(choices[int(rng.integers(len(choices)))])


BLUR_KERNEL, BLUR_SIGMA = 7, 3.0  # GuidedMixup Section 5.1


def gaussian_blur(maps: torch.Tensor) -> torch.Tensor:
    """Gaussian blur, kernel 7, sigma 3, reflect padding (torchvision): (B, H, W) -> (B, H, W)."""
    k, s = BLUR_KERNEL, BLUR_SIGMA
    return TF.gaussian_blur(maps.unsqueeze(1), [k, k], [s, s]).squeeze(1)


def spectral_residual_saliency(x: torch.Tensor, max_size: int = 128) -> torch.Tensor:
    """Guided-SR saliency (Hou & Zhang 2007 as GuidedMixup's code computes it), batched on x's
    device, no gradient: greyscale (ITU 0.299/0.587/0.114), images larger than ``max_size``
    resized to max_size^2, log amplitude spectrum minus its 3x3 mean (replicate padding), the
    phase kept, the magnitude of the inverse FFT (not squared), Gaussian blur (7, 3), resized
    back.  x (B, C, H, W) as the model sees it -> (B, H, W) >= 0."""
    check_rank("x", x, 4, "(B, C, H, W)")
    with torch.no_grad():
        img = x.float()
        grey = TF.rgb_to_grayscale(img) if img.shape[1] == 3 else img[:, :1]
        h, w = grey.shape[-2:]
        resized = h > max_size
        if resized:
            grey = TF.resize(grey, [max_size, max_size], antialias=True)
        spec = torch.fft.fft2(grey)
        amp = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-10)
        log_amp = torch.log(amp)
        mean3 = F.avg_pool2d(F.pad(log_amp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        residual = log_amp - mean3  # the spectral residual
        sal = torch.fft.ifft2(spec * torch.exp(residual) / amp).abs()
        sal = gaussian_blur(sal[:, 0])
        if resized:
            sal = TF.resize(sal.unsqueeze(1), [h, w], antialias=True).squeeze(1)
        return sal.clamp(min=0)
