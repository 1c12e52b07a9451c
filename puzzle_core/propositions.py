"""Numerical checks of the paper's propositions (Section 3-4), shared by the tests and the
propositions notebook.  Each function returns the measured quantities; callers assert on them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .mask.energy import GridEnergy, boundary_distances, puzzle_energy
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


def random_edge_distances(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """d_p (Def. 2) of ``n`` random vertical and ``n`` random horizontal edges, measured by
    :func:`boundary_distances` on random one-channel 2 x 2 images in [0, 1] (one pixel per cell,
    so d_p = |x - y| covers [0, 1]) -> d_v, d_h (n, 2, 2), index [a, b] = source of the first /
    second cell (1 = self, 0 = partner)."""
    x_self = torch.rand(n, 1, 2, 2, generator=generator, dtype=torch.float64)
    x_part = torch.rand(n, 1, 2, 2, generator=generator, dtype=torch.float64)
    d_v, d_h = boundary_distances(x_self, x_part, 2, 1)
    return d_v[..., 0, 0], d_h[..., 0, 0]


def def3_pairwise_tables(
    d: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    n_labels: int,
    *,
    keep_interaction: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The oracle of Prop. 2, written from the definitions alone (no project energy code).

    d (n, 2, 2): phi^b of each edge (Def. 2, [a, b] = source of cell i / j, 1 = self);
    beta, gamma (n,).  Returns psi (L, L) (Def. 1) and e = beta psi + gamma phi (n, L, L) on
    L = {t/m}, phi the bilinear interpolation (Def. 3) of the paper's phi^b'
    (phi^b'(0,0) = phi^b(0,0) + (phi^b(0,1) + phi^b(1,0)) / 2, etc., Section 4.1), or of phi^b
    itself when ``keep_interaction`` (the unmodified extension, *not* submodular in general)."""
    m = n_labels - 1
    z = torch.arange(n_labels, dtype=torch.float64) / m
    psi = (z[:, None] - z[None, :]) ** 2
    d = d.to(torch.float64)
    if keep_interaction:
        phib = d
    else:  # each entry plus half the opposite diagonal: no interaction left
        anti = (d[:, 0, 1] + d[:, 1, 0]) / 2
        diag = (d[:, 0, 0] + d[:, 1, 1]) / 2
        phib = d + torch.stack([torch.stack([anti, diag], -1), torch.stack([diag, anti], -1)], 1)
    wts = torch.stack([1 - z, z])  # (2, L): weight of binary state a at value z
    phi = torch.einsum("ai,bj,nab->nij", wts, wts, phib)
    beta = beta.to(torch.float64).reshape(-1, 1, 1)
    gamma = gamma.to(torch.float64).reshape(-1, 1, 1)
    return psi, beta * psi + gamma * phi


def energy_pairwise_tables(
    d: torch.Tensor,
    beta: float,
    gamma: float,
    n_labels: int,
    *,
    vertical: bool = False,
    phi: str = "paper",
) -> torch.Tensor:
    """The pairwise tables e_ij(z_i, z_j) = beta psi + gamma phi of the project's Eq. (4)
    energy, read out of :func:`puzzle_energy`: each edge is built alone (a 2 x 1 grid when
    ``vertical``, else 1 x 2; one batch entry per edge) with zero saliency and eta = 0, so its
    energy is exactly that edge's term, the modular shares of phi that the energy moves into the
    unary included, and ``GridEnergy.evaluate`` is taken at all L^2 labellings.

    d (n, 2, 2) phi^b of each edge (Def. 2) -> (n, L, L), [k_i, k_j] with i the upper / left
    cell."""
    f64 = torch.float64
    n = d.shape[0]
    shape = (2, 1) if vertical else (1, 2)
    one = d.to(f64).reshape(n, 2, 2, 1, 1)
    empty = torch.zeros((n, 2, 2, 2, 0) if vertical else (n, 2, 2, 0, 2), dtype=f64)
    e = puzzle_energy(
        torch.zeros(n, *shape, dtype=f64),
        torch.zeros(n, *shape, dtype=f64),
        one if vertical else empty,
        empty if vertical else one,
        torch.full((n,), 0.5, dtype=f64),
        n_labels=n_labels,
        beta=beta,
        gamma=gamma,
        eta=0.0,
        phi=phi,
    )
    k = torch.arange(n_labels)
    pairs = torch.stack(torch.meshgrid(k, k, indexing="ij"), -1).reshape(-1, *shape)  # (L^2,..)
    q = len(pairs)
    every = GridEnergy(  # edge-major: entry b * L^2 + p is edge b at labelling p
        e.unary.repeat_interleave(q, 0),
        e.pair_v.repeat_interleave(q, 0),
        e.pair_h.repeat_interleave(q, 0),
    )
    return every.evaluate(pairs.repeat(n, 1, 1)).reshape(n, n_labels, n_labels)


@dataclass
class Prop2Check:
    """Prop. 2 on random edges: ``tables`` read out of the project's energy
    (:func:`energy_pairwise_tables`), ``oracle`` = beta psi + gamma phi from Defs. 1-3
    (:func:`def3_pairwise_tables`), ``psi`` (L, L) and the drawn gamma / beta per edge."""

    tables: torch.Tensor
    oracle: torch.Tensor
    psi: torch.Tensor
    gamma_over_beta: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        """Submodularity margins of the energy's tables (Lemma 1 form), (2n, L-1, L-1)."""
        return multilabel_margins(self.tables)

    def max_deviation(self) -> float:
        """max |energy table - Def. 3 table| over all edges and label pairs."""
        return float((self.tables - self.oracle).abs().max())

    def violations(self, atol: float = 1e-12) -> int:
        """Number of margins below -atol."""
        return int((self.margins < -atol).sum())

    def holds(self, atol: float = 1e-12) -> bool:
        """The energy is Def. 3's (tables equal the oracle) and pairwise submodular (Prop. 2)."""
        return self.max_deviation() <= atol and self.violations(atol) == 0


def check_prop2(
    n: int,
    n_labels: int,
    generator: torch.Generator,
    *,
    max_gamma_over_beta: float = 5.0,
    draws: int = 50,
    phi: str = "paper",
) -> Prop2Check:
    """Prop. 2 / Lemma 1 (beta, gamma >= 0, any ratio): ``n`` vertical and ``n`` horizontal random
    edges (:func:`random_edge_distances`) split over ``draws`` coefficient draws, beta ~
    U(1e-3, 1], gamma = r beta with r ~ U[0, max_gamma_over_beta]; the tables that
    ``puzzle_energy(phi=phi)`` builds against the Def. 3 oracle.  ``phi="reference"`` keeps the
    interaction w (z_i - z_j)^2: it is expected to fail both parts (it is not Def. 3, and for
    gamma > beta not submodular)."""
    g = generator
    d_v, d_h = random_edge_distances(n, g)
    draws = max(1, min(draws, n))
    beta = torch.rand(draws, generator=g, dtype=torch.float64) * (1 - 1e-3) + 1e-3
    ratio = torch.rand(draws, generator=g, dtype=torch.float64) * max_gamma_over_beta
    gamma = ratio * beta
    group = torch.arange(n) * draws // n  # edge -> its coefficient draw
    tables = [torch.empty(n, n_labels, n_labels, dtype=torch.float64) for _ in range(2)]
    for t in range(draws):
        at = group == t
        for vertical, d, out in ((True, d_v, tables[0]), (False, d_h, tables[1])):
            b, c = float(beta[t]), float(gamma[t])
            out[at] = energy_pairwise_tables(d[at], b, c, n_labels, vertical=vertical, phi=phi)
    group2 = torch.cat([group, group])
    psi, oracle = def3_pairwise_tables(torch.cat([d_v, d_h]), beta[group2], gamma[group2], n_labels)
    return Prop2Check(torch.cat(tables), oracle, psi, ratio[group2])


@dataclass
class TransportCheck:
    """Per instance: n, steps to convergence, converged, whether every z = 1 column had exactly
    one winner at every step (Prop. 3), the largest increase of the partial objective between
    steps (Prop. 4, <= 0 expected), and the final plan's objective vs the exact optimum.
    ``max_iter`` is the step budget the run had (above Prop. 5's bound unless a caller capped it),
    ``bound`` = n(n-1)/2 + 1 (Prop. 5)."""

    n: int
    steps: torch.Tensor
    converged: torch.Tensor
    prop3: torch.Tensor
    prop4_max_increase: torch.Tensor
    objective: torch.Tensor
    optimum: torch.Tensor
    random: torch.Tensor
    max_iter: int
    bound: int

    def prop5(self) -> torch.Tensor:
        """(B,) bool, Prop. 5: converged (to a permutation) within n(n-1)/2 + 1 steps.  Only
        meaningful when the run was not capped at the bound (``max_iter > bound``)."""
        return self.converged & (self.steps <= self.bound)

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


def prop5_bound(n: int) -> int:
    """Prop. 5: Algorithm 1 converges within n(n-1)/2 + 1 steps."""
    return n * (n - 1) // 2 + 1


def check_transport(
    cost: torch.Tensor,
    z: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    max_iter: int | None = None,
) -> TransportCheck:
    """Run Algorithm 1 (paper conflict rule, v = inf) with a trace and the exact assignment;
    measure Props. 3-5 and the optimality gap.

    ``masked_transport`` stops at Prop. 5's bound by default, which would make "converged within
    the bound" hold by construction.  Here the budget is ``max_iter``, by default twice the bound,
    so a run that needs more steps than Prop. 5 allows is seen (steps > bound, or not converged);
    the loop still stops at convergence.  A smaller ``max_iter`` reproduces a capped run."""
    b, n, _ = cost.shape
    bound = prop5_bound(n)
    budget = 2 * bound if max_iter is None else max_iter
    plan = masked_transport(cost, conflict="paper", max_iter=budget, trace=True)
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
        budget,
        bound,
    )
