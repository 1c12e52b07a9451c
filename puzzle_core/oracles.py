"""Independent oracles for the solvers: exhaustive search over every labelling (by enumeration,
and by an exact row-state dynamic programme that still visits every labelling implicitly), and
random Puzzle Mix mask energies to feed them."""

from __future__ import annotations

import itertools

import torch

from .mask.energy import GridEnergy, puzzle_energy


def enumerate_labelings(n_labels: int, cells: int) -> torch.Tensor:
    """Every labelling of ``cells`` variables -> (n_labels ** cells, cells) long."""
    return torch.tensor(list(itertools.product(range(n_labels), repeat=cells)), dtype=torch.long)


def brute_force_mask(energy: GridEnergy, chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum by enumerating all L^(gh*gw) labellings -> (labels (B, gh, gw), energy (B,)).
    Ties go to the first labelling in lexicographic order."""
    b, gh, gw, n_labels = energy.unary.shape
    allk = enumerate_labelings(n_labels, gh * gw).view(-1, gh, gw)
    best_e = torch.full((b,), float("inf"), dtype=torch.float64)
    best_k = torch.zeros((b, gh, gw), dtype=torch.long)
    for i in range(b):
        one = GridEnergy(
            energy.unary[i : i + 1], energy.pair_v[i : i + 1], energy.pair_h[i : i + 1]
        )
        for s in range(0, allk.shape[0], chunk):
            lab = allk[s : s + chunk]
            m = lab.shape[0]
            e = GridEnergy(
                one.unary.expand(m, -1, -1, -1),
                one.pair_v.expand(m, -1, -1),
                one.pair_h.expand(m, -1, -1),
            ).evaluate(lab)
            j = int(e.argmin())
            if e[j] < best_e[i]:
                best_e[i], best_k[i] = e[j], lab[j]
    return best_k, best_e


def row_dp_mask(energy: GridEnergy) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact minimum by dynamic programming over row states (every labelling of a row is a
    state; the energy is a chain over rows), batched -> (labels (B, gh, gw), energy (B,))."""
    e = GridEnergy(
        energy.unary.double().cpu(), energy.pair_v.double().cpu(), energy.pair_h.double().cpu()
    )
    b, gh, gw, n_labels = e.unary.shape
    m = max(n_labels - 1, 1)
    states = enumerate_labelings(n_labels, gw)  # (S, gw)
    zs = states.double() / m
    # row cost: unary + horizontal pairwise, (B, gh, S)
    un = torch.stack([e.unary[:, r][:, torch.arange(gw), states].sum(-1) for r in range(gh)], 1)
    dh = (zs[:, 1:] - zs[:, :-1]) ** 2  # (S, gw-1)
    row_cost = un + torch.einsum("brw,sw->brs", e.pair_h, dh)
    # vertical pairwise between consecutive rows: (B, gh-1, S, S)
    dv = (zs[:, None, :] - zs[None, :, :]) ** 2  # (S, S, gw)
    trans = torch.einsum("brw,stw->brst", e.pair_v, dv)
    cost = row_cost[:, 0]  # (B, S)
    back = []
    for r in range(1, gh):
        tot = cost[:, :, None] + trans[:, r - 1]  # (B, S_prev, S)
        cost, arg = tot.min(1)
        cost = cost + row_cost[:, r]
        back.append(arg)
    best, last = cost.min(1)
    idx = [last]
    for arg in reversed(back):
        idx.append(arg.gather(1, idx[-1].unsqueeze(1)).squeeze(1))
    idx.reverse()
    labels = torch.stack([states[i] for i in idx], 1)  # (B, gh, gw)
    return labels, best


def random_puzzle_energy(
    batch: int,
    grid: int,
    n_labels: int,
    generator: torch.Generator,
    *,
    phi: str = "reference",
    max_gamma_ratio: float = 1.0,
) -> GridEnergy:
    """Random Eq. (4) instances: random saliency maps (normalised), random d_p in [0, 1],
    lambda ~ U(0, 1), and coefficients drawn at the reference scale with gamma <= max_ratio *
    beta (the submodular regime of Prop. 1 when the ratio is <= 1)."""
    g = generator
    sal = torch.rand(batch, grid, grid, generator=g, dtype=torch.float64) ** 3
    sal = sal / sal.sum((1, 2), keepdim=True)
    perm = torch.randperm(batch, generator=g)
    d_v = torch.rand(batch, 2, 2, grid - 1, grid, generator=g, dtype=torch.float64)
    d_h = torch.rand(batch, 2, 2, grid, grid - 1, generator=g, dtype=torch.float64)
    lam = torch.rand(batch, generator=g, dtype=torch.float64)
    beta = float(torch.rand(1, generator=g)) * 2.4 / (16 * grid)
    gamma = float(torch.rand(1, generator=g)) * max_gamma_ratio * beta
    eta = float(torch.rand(1, generator=g)) * 0.4 / grid**2
    return puzzle_energy(
        sal, sal[perm], d_v, d_h, lam, n_labels=n_labels, beta=beta, gamma=gamma, eta=eta, phi=phi
    )
