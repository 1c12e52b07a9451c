"""The mask energy of Eq. (4) as a grid MRF on ordered labels, shared by every solver.

Label index ``k`` in {0, ..., m} stands for the mask value z = k / m (the label space
L = {t/m}, Section 3.1); ``z`` is the weight of the example itself ("self", the paper's x1) and
``1 - z`` that of its partner (the paper's x0).

Every energy the project minimises has the form

    E(k) = sum_i unary[i, k_i] + sum_{(i,j) in N} c_ij * (z_i - z_j) ** 2,      c_ij >= 0,

i.e. an arbitrary unary term plus a pairwise term that is a non-negative multiple of the
label-smoothness psi(z_i, z_j) = (z_i - z_j)^2 (Def. 1).  ``pair_v`` holds c for vertical edges
(cell (r, c) -- cell (r+1, c)) and ``pair_h`` for horizontal edges (cell (r, c) -- cell (r, c+1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GridEnergy:
    """unary (B, gh, gw, L), pair_v (B, gh-1, gw), pair_h (B, gh, gw-1); float64, CPU or CUDA."""

    unary: torch.Tensor
    pair_v: torch.Tensor
    pair_h: torch.Tensor

    @property
    def n_labels(self) -> int:
        return int(self.unary.shape[-1])

    @property
    def batch(self) -> int:
        return int(self.unary.shape[0])

    def to(self, device: torch.device | str) -> GridEnergy:
        return GridEnergy(self.unary.to(device), self.pair_v.to(device), self.pair_h.to(device))

    def evaluate(self, labels: torch.Tensor) -> torch.Tensor:
        """Energy of integer labels (B, gh, gw) -> (B,) float64 (Eq. 4 at that labelling)."""
        labels = labels.to(self.unary.device).long()
        m = max(self.n_labels - 1, 1)
        u = self.unary.gather(-1, labels.unsqueeze(-1)).squeeze(-1).sum((1, 2))
        z = labels.to(self.unary.dtype) / m
        pv = (self.pair_v * (z[:, 1:, :] - z[:, :-1, :]) ** 2).sum((1, 2))
        ph = (self.pair_h * (z[:, :, 1:] - z[:, :, :-1]) ** 2).sum((1, 2))
        return u + pv + ph

    def is_submodular(self, atol: float = 0.0) -> torch.Tensor:
        """(B,) bool: every pairwise weight >= 0, i.e. the pairwise term is convex in z_i - z_j."""
        ok_v = (self.pair_v >= -atol).flatten(1).all(1) if self.pair_v.numel() else None
        ok_h = (self.pair_h >= -atol).flatten(1).all(1) if self.pair_h.numel() else None
        ok = torch.ones(self.batch, dtype=torch.bool, device=self.unary.device)
        if ok_v is not None:
            ok &= ok_v
        if ok_h is not None:
            ok &= ok_h
        return ok


def boundary_distances(
    x_self: torch.Tensor, x_partner: torch.Tensor, grid: int, neigh_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """d_p of Def. 2 for every pair of neighbouring cells and every pair of sources.

    x_self, x_partner (B, C, H, W) in pixel space; ``grid`` cells per side.  The images are first
    average-pooled with ``neigh_size`` (reference ``neigh_size``, capped at the cell size); d_p is
    the mean absolute difference, over channels and along the shared boundary, between the last
    pooled row (column) of one cell and the first of the next.

    Returns d_v (B, 2, 2, grid-1, grid) for vertical edges (upper cell, lower cell) and
    d_h (B, 2, 2, grid, grid-1) for horizontal edges (left cell, right cell); index [a, b] is the
    source of the first / second cell, 1 = self, 0 = partner.
    """
    _, _, h, w = x_self.shape
    bh, bw = h // grid, w // grid
    ns = min(neigh_size, bh, bw)
    if bh % ns or bw % ns:
        raise ValueError(f"neigh_size={ns} must divide the cell size {bh}x{bw}")
    kh, kw = bh // ns, bw // ns
    pooled = (
        torch.nn.functional.avg_pool2d(x_partner, ns),
        torch.nn.functional.avg_pool2d(x_self, ns),
    )
    d_v = x_self.new_zeros((x_self.shape[0], 2, 2, grid - 1, grid))
    d_h = x_self.new_zeros((x_self.shape[0], 2, 2, grid, grid - 1))
    for a in (0, 1):
        for b in (0, 1):
            p, q = pooled[a], pooled[b]
            dv = (p[:, :, :-1, :] - q[:, :, 1:, :])[:, :, kh - 1 :: kh, :]
            dh = (p[:, :, :, :-1] - q[:, :, :, 1:])[:, :, :, kw - 1 :: kw]
            dv, dh = dv.abs().mean(1), dh.abs().mean(1)
            # a (1, 1) average is the identity: skipped (fine grids), same values
            d_v[:, a, b] = torch.nn.functional.avg_pool2d(dv, (1, kw)) if kw > 1 else dv
            d_h[:, a, b] = torch.nn.functional.avg_pool2d(dh, (kh, 1)) if kh > 1 else dh
    return d_v, d_h


def binomial_log_prior(lam: torch.Tensor, n_labels: int, eps: float) -> torch.Tensor:
    """log p(z = k/m) with m z ~ Binomial(m, lam) (the mixing prior of Eq. 4) -> (B, L).

    ``eps`` is added inside the log (reference: 1e-8); with eps = 0 a zero probability is clamped
    to the smallest positive double so that the energy stays finite.
    """
    m = n_labels - 1
    k = torch.arange(n_labels, dtype=torch.float64, device=lam.device)
    lam = lam.to(torch.float64).reshape(-1, 1)
    log_binom = (
        torch.lgamma(torch.tensor(m + 1.0, dtype=torch.float64, device=lam.device))
        - torch.lgamma(k + 1)
        - torch.lgamma(m - k + 1)
    )
    p = torch.exp(log_binom) * lam**k * (1 - lam) ** (m - k)
    return torch.log(torch.clamp(p + eps, min=torch.finfo(torch.float64).tiny))


def puzzle_energy(
    sal_self: torch.Tensor,
    sal_partner: torch.Tensor,
    d_v: torch.Tensor,
    d_h: torch.Tensor,
    lam: torch.Tensor,
    *,
    n_labels: int,
    beta: float,
    gamma: float,
    eta: float,
    phi: str = "reference",
    prior_eps: float = 1e-8,
) -> GridEnergy:
    """Eq. (4) as a GridEnergy, in float64.

    sal_self, sal_partner (B, g, g): pooled saliency normalised to sum 1; d_v, d_h from
    :func:`boundary_distances`; lam (B,) the prior mean.  ``beta``, ``gamma`` and ``eta`` are the
    *effective* coefficients of Eq. (4) (the reference scaling is applied by the caller).

    * unary: z * s(partner) + (1 - z) * s(self)      (Eq. 4 unary, up to the constant sum of both)
      + the modular shares of gamma * phi            (Def. 3 / the reference decomposition)
      - eta * log p(z)                                (Eq. 4 prior)
    * pairwise: (beta + interaction) * (z_i - z_j)^2  (Def. 1), where the interaction
      w = gamma (phi10 + phi01 - phi00 - phi11) / 2 is kept for ``phi="reference"`` (the official
      code, any label count) and for binary labels with ``phi="paper"`` (Def. 2: beta psi +
      gamma phi^b exactly), and dropped for ``phi="paper"`` with 3+ labels (Def. 3: phi is the
      bilinear interpolation of the modular phi^b', which has no interaction).
    """
    if phi not in ("reference", "paper"):
        raise ValueError(f"phi must be 'reference' or 'paper', got {phi!r}")
    f64 = torch.float64
    s_self = sal_self.to(f64)
    s_part = sal_partner.to(f64)
    pv = gamma * d_v.to(f64)  # phi^b tables (Def. 2), [a, b] = source of first/second cell
    ph = gamma * d_h.to(f64)
    # modular shares: cost of each cell showing self (1) or partner (0)
    share1 = torch.zeros_like(s_self)
    share0 = torch.zeros_like(s_self)
    share1[:, :-1, :] += (pv[:, 1, 0] + pv[:, 1, 1]) / 2
    share0[:, :-1, :] += (pv[:, 0, 1] + pv[:, 0, 0]) / 2
    share1[:, 1:, :] += (pv[:, 0, 1] + pv[:, 1, 1]) / 2
    share0[:, 1:, :] += (pv[:, 1, 0] + pv[:, 0, 0]) / 2
    share1[:, :, :-1] += (ph[:, 1, 0] + ph[:, 1, 1]) / 2
    share0[:, :, :-1] += (ph[:, 0, 1] + ph[:, 0, 0]) / 2
    share1[:, :, 1:] += (ph[:, 0, 1] + ph[:, 1, 1]) / 2
    share0[:, :, 1:] += (ph[:, 1, 0] + ph[:, 0, 0]) / 2
    a = s_part + share1  # coefficient of z
    b = s_self + share0  # coefficient of (1 - z)
    m = n_labels - 1
    z = torch.arange(n_labels, dtype=f64, device=s_self.device) / max(m, 1)
    log_p = binomial_log_prior(lam, n_labels, prior_eps)  # (B, L)
    unary = a[..., None] * z + b[..., None] * (1 - z) - eta * log_p[:, None, None, :]
    keep_interaction = phi == "reference" or n_labels == 2
    w_v = (pv[:, 1, 0] + pv[:, 0, 1] - pv[:, 1, 1] - pv[:, 0, 0]) / 2
    w_h = (ph[:, 1, 0] + ph[:, 0, 1] - ph[:, 1, 1] - ph[:, 0, 0]) / 2
    pair_v = beta + (w_v if keep_interaction else torch.zeros_like(w_v))
    pair_h = beta + (w_h if keep_interaction else torch.zeros_like(w_h))
    return GridEnergy(unary, pair_v, pair_h)
