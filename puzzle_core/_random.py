"""Randomness through an explicit torch.Generator, shared by every mixer."""

from __future__ import annotations

import numpy as np
import torch


def numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A numpy Generator seeded from ``generator`` (or torch's global RNG when None), for the
    draws torch lacks a generator argument for (Beta, Dirichlet)."""
    seed = torch.randint(0, 2**62, (1,), generator=generator).item()
    return np.random.default_rng(seed)


def draw_lambda(alpha: float, rng: np.random.Generator) -> float:
    """lambda ~ Beta(alpha, alpha); alpha <= 0 means lambda = 1 (reference ``get_lambda``)."""
    return float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
