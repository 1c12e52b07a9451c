"""Numerical checks of the paper's propositions (Section 3-4), shared by the tests and the
propositions notebook.  Each function returns the measured quantities; callers assert on them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .mask.energy import puzzle_energy
from .transport import (
    exact_transport,
    grid_cost_matrix,
    masked_transport,
    plan_matrix,
    plan_objective,
)


def binary_phi_margins(n: int, gamma_over_beta: float, generator: torch.Generator) -> torch.Tensor:
    """Prop. 1: for binary labels, beta psi + gamma phi^b (Def. 1, Def. 2) with d_p in [0, 1] is
    submodular when gamma <= beta.  Builds ``n`` random edges through :func:`puzzle_energy`
    (phi="paper", 2 labels, 1 x 2 cells would do; a 2 x 2 grid is used) and returns the
    submodularity margins E(0,1) + E(1,0) - E(0,0) - E(1,1) of every edge (>= 0 iff submodular).
    """
    g = generator
    beta = torch.rand(n, generator=g, dtype=torch.float64) + 1e-3
    d_v = torch.rand(n, 2, 2, 1, 2, generator=g, dtype=torch.float64)
    d_h = torch.rand(n, 2, 2, 2, 1, generator=g, dtype=torch.float64)
    margins = []
    for i in range(n):  # one coefficient pair per instance
        b = float(beta[i])
        e = puzzle_energy(
            torch.full((1, 2, 2), 0.25, dtype=torch.float64),
            torch.full((1, 2, 2), 0.25, dtype=torch.float64),
            d_v[i : i + 1],
            d_h[i : i + 1],
            torch.tensor([0.5]),
            n_labels=2,
            beta=b,
            gamma=gamma_over_beta * b,
            eta=0.0,
            phi="paper",
        )
        # binary: (z_i - z_j)^2 = [z_i != z_j], the margin of an edge is 2 * its weight
        margins.append(2 * torch.cat([e.pair_v.flatten(), e.pair_h.flatten()]))
    return torch.cat(margins)


def multilabel_margins(theta: torch.Tensor) -> torch.Tensor:
    """Pairwise submodularity on ordered labels (Lemma 1 / Prop. 2): theta (..., L, L) ->
    theta(a+1, b) + theta(a, b+1) - theta(a, b) - theta(a+1, b+1) for all a, b (>= 0 iff
    submodular)."""
    return theta[..., 1:, :-1] + theta[..., :-1, 1:] - theta[..., :-1, :-1] - theta[..., 1:, 1:]


def def3_pairwise_tables(
    n: int,
    n_labels: int,
    generator: torch.Generator,
    *,
    gamma_over_beta: float = 1.0,
    keep_interaction: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random edges' pairwise tables on L = {t/m}: psi (L, L) (Def. 1) and
    beta psi + gamma phi (n, L, L), phi the bilinear interpolation (Def. 3) of phi^b' (the
    modular part of phi^b, d_p ~ U[0, 1]), or of phi^b itself when ``keep_interaction`` (the
    unmodified extension, which is *not* submodular in general)."""
    g = generator
    m = n_labels - 1
    z = torch.arange(n_labels, dtype=torch.float64) / m
    psi = (z[:, None] - z[None, :]) ** 2
    d = torch.rand(n, 2, 2, generator=g, dtype=torch.float64)
    beta = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) + 1e-3
    gamma = gamma_over_beta * beta
    w = (d[:, 1, 0] + d[:, 0, 1] - d[:, 0, 0] - d[:, 1, 1]) / 2
    ab = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)  # [a != b]
    phib = d if keep_interaction else d - w[:, None, None] * ab  # phi^b' = phi^b - w psi
    wts = torch.stack([1 - z, z])  # (2, L): weight of binary state a at value z
    phi = torch.einsum("ai,bj,nab->nij", wts, wts, phib)
    return psi, beta * psi + gamma * phi


@dataclass
class TransportCheck:
    """Per instance: n, steps to convergence, converged, whether every z = 1 column had exactly
    one winner at every step (Prop. 3), the largest increase of the partial objective between
    steps (Prop. 4, <= 0 expected), and the final plan's objective vs the exact optimum."""

    n: int
    steps: torch.Tensor
    converged: torch.Tensor
    prop3: torch.Tensor
    prop4_max_increase: torch.Tensor
    objective: torch.Tensor
    optimum: torch.Tensor
    random: torch.Tensor

    def relative_error(self) -> torch.Tensor:
        """(Alg. 1 - optimum) / |optimum| per instance."""
        return (self.objective - self.optimum) / self.optimum.abs().clamp(min=1e-12)

    def normalised_error(self) -> float:
        """sum(Alg. 1 - optimum) / sum(random permutation - optimum) over the instances: 0 =
        optimal, 1 = no better than a random plan on average."""
        return float((self.objective - self.optimum).sum() / (self.random - self.optimum).sum())


def random_transport_instances(
    batch: int, side: int, generator: torch.Generator, *, n_labels: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """C' = xi C - s z^T (Eq. 5) for random saliency (normalised), z in L and xi ~ U(0.05, 1)
    -> (cost (B, n, n), z (B, n))."""
    g = generator
    n = side * side
    s = torch.rand(batch, n, generator=g, dtype=torch.float64) ** 2
    s = s / s.sum(1, keepdim=True)
    z = torch.randint(0, n_labels, (batch, n), generator=g).double() / (n_labels - 1)
    xi = 0.05 + 0.95 * torch.rand(batch, 1, 1, generator=g, dtype=torch.float64)
    cost = xi * grid_cost_matrix(side, side, dtype=torch.float64) - s[:, :, None] * z[:, None, :]
    return cost, z


def check_transport(
    cost: torch.Tensor, z: torch.Tensor, generator: torch.Generator | None = None
) -> TransportCheck:
    """Run Algorithm 1 (paper conflict rule, v = inf, until convergence) with a trace and the
    exact assignment; measure Props. 3-5 and the optimality gap."""
    b, n, _ = cost.shape
    plan = masked_transport(cost, conflict="paper", trace=True)
    shown = z >= 1
    prop3 = torch.ones(b, dtype=torch.bool)
    prev = torch.full((b,), float("inf"), dtype=cost.dtype)
    max_inc = torch.full((b,), float("-inf"), dtype=cost.dtype)
    for t, src in enumerate(plan.trace or []):
        live = plan.iterations > t  # steps run by each example
        pi = plan_matrix(src)  # (B, n, n)
        col_ok = ((pi.sum(1) == 1) | ~shown).all(1) & (pi.sum(2) <= 1).all(1)
        prop3 &= col_ok | ~live
        f = plan_objective(cost, src, shown)
        inc = torch.where(live & torch.isfinite(prev), f - prev, torch.full_like(f, float("-inf")))
        max_inc = torch.maximum(max_inc, inc)
        prev = torch.where(live, f, prev)
    best = exact_transport(cost)
    rand = torch.stack([torch.randperm(n, generator=generator) for _ in range(b)])
    return TransportCheck(
        n,
        plan.iterations,
        plan.converged & plan.is_permutation(),
        prop3,
        max_inc,
        plan_objective(cost, plan.source),
        plan_objective(cost, best.source),
        plan_objective(cost, rand),
    )
