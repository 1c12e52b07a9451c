"""The official ``mixup_graph`` (snu-mllab/PuzzleMix, ``mixup.py``) re-expressed on this
project's algorithms, for parity checks against cases produced by running the official code.

Everything here follows the reference numerics on purpose, including its quirks (see
docs/reference-implementation.md §1a, §1b): beta scaled by 1/(16 g), gamma relative to the
scaled beta, eta / g^2 with 1e-8 inside the log, the energy truncated to int32 at 1000 g^2 and
handed to gco in float mode, the transport cost with binarised masks, the conflict step with
non-choosers counted as 0, exactly g transport steps, partial plans and zero patches.  The float32
operations are done in the same order as the official code so that the integer energies, and
therefore gco's labels, are identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_batch, check_choice, check_permutation, check_rank
from .mask.energy import GridEnergy, boundary_distances
from .mask.exact import solve_exact
from .mask.swap import gco_swap_grid
from .transport import apply_plan, grid_cost_matrix, saliency_transport

_REF_PRIOR_EPS = 1e-8


def _reference_prior(lam: float, eta: float, n_labels: int, grid: int) -> np.ndarray:
    """prior_t = eta * -log(C(m,t) lam^(m-t) (1-lam)^t + 1e-8) / g^2 in gco label order t."""
    m = n_labels - 1
    probs = [math.comb(m, t) * lam ** (m - t) * (1 - lam) ** t for t in range(n_labels)]
    prior = np.array([-np.log(p + _REF_PRIOR_EPS) for p in probs])
    return eta * prior / grid**2


def official_mixup_graph(
    x: torch.Tensor,
    saliency: torch.Tensor,
    indices: torch.Tensor,
    *,
    block_num: int,
    lam: float,
    beta: float,
    gamma: float,
    eta: float,
    neigh_size: int,
    n_labels: int,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    transport: bool,
    t_eps: float,
    t_size: int,
    noise: torch.Tensor | None = None,
    adv_mask1: int = 0,
    adv_mask2: int = 0,
    solver: str = "swap",
) -> dict[str, torch.Tensor | None]:
    """The official ``mixup_graph`` with explicit arguments.

    x (B, 3, H, W) normalised batch; saliency (B, H, W) non-negative; indices (B,) partner of
    each example.  ``solver="swap"`` is gco as the reference calls it (integer energies);
    ``solver="exact"`` minimises the same real-valued energy to its global optimum.

    Returns ``mask_block`` (B, g, g), ``plan_self``/``plan_partner`` (B, n_t, n_t) 0/1 (None
    without transport), ``mixed`` (B, 3, H, W), ``ratio`` (B,) and the graph-cut terms
    ``gc_unary_partner``, ``gc_unary_self`` (B, g, g), ``gc_pw_x`` (B, g-1, g), ``gc_pw_y``
    (B, g, g-1) with the fixtures' meaning.
    """
    check_rank("x", x, 4, "(B, 3, H, W)")
    check_rank("saliency", saliency, 3, "(B, H, W)")
    batch, _, height, width = x.shape
    check_batch("saliency", saliency, batch)
    check_permutation("indices", indices, batch)
    check_choice("solver", solver, ("swap", "exact"))
    check_choice("n_labels", n_labels, (2, 3, 4))
    if width % block_num or height != width:
        raise ValueError(f"block_num={block_num} must divide a square image, got {height}x{width}")
    dev = x.device
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=dev).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=dev).reshape(1, -1, 1, 1)
    indices = indices.to(dev).long()

    input1 = x
    input2 = x[indices].clone()
    block_size = width // block_num
    neigh_size = min(neigh_size, block_size)
    t_size = min(t_size, block_size)
    # reference scaling of beta (docs/reference-implementation.md §1b #2)
    beta_s = beta / block_num / 16

    grad_pool = F.avg_pool2d(saliency, block_size)
    unary_self = grad_pool / grad_pool.reshape(batch, -1).sum(1).reshape(batch, 1, 1)
    unary_partner = unary_self[indices]

    x_pix = input1 * std_t + mean_t
    d_v, d_h = boundary_distances(x_pix, x_pix[indices], block_num, neigh_size)
    # phi = gamma * beta_s * d (docs/reference-implementation.md §1b #3)
    pw_x = beta_s * gamma * d_v
    pw_y = beta_s * gamma * d_h

    # decomposition of phi into unary shares plus an interaction, in the code's order
    u1 = unary_self.clone()
    u2 = unary_partner.clone()
    u2[:, :-1, :] += (pw_x[:, 1, 0] + pw_x[:, 1, 1]) / 2.0
    u1[:, :-1, :] += (pw_x[:, 0, 1] + pw_x[:, 0, 0]) / 2.0
    u2[:, 1:, :] += (pw_x[:, 0, 1] + pw_x[:, 1, 1]) / 2.0
    u1[:, 1:, :] += (pw_x[:, 1, 0] + pw_x[:, 0, 0]) / 2.0
    u2[:, :, :-1] += (pw_y[:, 1, 0] + pw_y[:, 1, 1]) / 2.0
    u1[:, :, :-1] += (pw_y[:, 0, 1] + pw_y[:, 0, 0]) / 2.0
    u2[:, :, 1:] += (pw_y[:, 0, 1] + pw_y[:, 1, 1]) / 2.0
    u1[:, :, 1:] += (pw_y[:, 1, 0] + pw_y[:, 0, 0]) / 2.0
    w_x = (pw_x[:, 1, 0] + pw_x[:, 0, 1] - pw_x[:, 1, 1] - pw_x[:, 0, 0]) / 2
    w_y = (pw_y[:, 1, 0] + pw_y[:, 0, 1] - pw_y[:, 1, 1] - pw_y[:, 0, 0]) / 2

    a = u2.detach().cpu().numpy()  # enters with z (the partner's cost of being covered)
    b = u1.detach().cpu().numpy()  # enters with 1 - z
    wx = w_x.detach().cpu().numpy()
    wy = w_y.detach().cpu().numpy()
    prior = _reference_prior(float(lam), eta, n_labels, block_num)
    large_val = 1000 * block_num**2
    m = n_labels - 1
    gco_t = np.linspace(0, 1, n_labels)  # gco label t <-> z = 1 - t/m
    masks = np.zeros((batch, block_num, block_num), dtype=np.float64)
    if solver == "swap":
        t_idx = np.arange(n_labels)
        label_cost = ((t_idx[:, None] - t_idx[None, :]) ** 2 / m**2).astype(np.float32)
        for i in range(batch):
            unary = np.stack(
                [(1 - lt) * a[i] + lt * b[i] + prior[t] for t, lt in enumerate(gco_t)], axis=-1
            )
            unary_int = (large_val * unary).astype(np.int32)
            cost_v = (large_val * (wx[i] + beta_s)).astype(np.int32)
            cost_h = (large_val * (wy[i] + beta_s)).astype(np.int32)
            labels = gco_swap_grid(unary_int, label_cost, cost_v, cost_h)
            masks[i] = (1.0 - labels / m).reshape(block_num, block_num)
    else:
        z = np.linspace(0, 1, n_labels)  # our label k <-> z = k/m
        unary = a[..., None].astype(np.float64) * z + b[..., None].astype(np.float64) * (1 - z)
        unary = unary + prior[::-1]
        energy = GridEnergy(
            torch.from_numpy(unary),
            torch.from_numpy(wx.astype(np.float64) + beta_s),
            torch.from_numpy(wy.astype(np.float64) + beta_s),
        )
        masks = solve_exact(energy).numpy() / m
    mask = torch.tensor(masks, dtype=torch.float32, device=dev).unsqueeze(1)
    mask_block = mask[:, 0].clone()

    if adv_mask1 == 1:
        if noise is None:
            raise ValueError("noise (B, 3, H, W) is required when adv_mask1 or adv_mask2 is 1")
        input1 = torch.clamp(input1 * std_t + mean_t + noise, 0, 1)
        input1 = (input1 - mean_t) / std_t
    if adv_mask2 == 1:
        if noise is None:
            raise ValueError("noise (B, 3, H, W) is required when adv_mask1 or adv_mask2 is 1")
        input2 = torch.clamp(input2 * std_t + mean_t + noise[indices], 0, 1)
        input2 = (input2 - mean_t) / std_t

    plan_self = plan_partner = None
    if transport:
        t_grid = block_num
        u_self_t, u_part_t = unary_self, unary_partner
        if t_size != -1 and t_size < block_size:
            t_grid = width // t_size
            mask = F.interpolate(mask, size=t_grid)
            gp = F.avg_pool2d(saliency, t_size)
            u_self_t = gp / gp.reshape(batch, -1).sum(1).reshape(batch, 1, 1)
            u_part_t = u_self_t[indices]
        cmat = grid_cost_matrix(t_grid, t_grid, dev, torch.float32)
        plans = []
        for inp, shown, sal in ((input1, mask, u_self_t), (input2, 1 - mask, u_part_t)):
            plan = saliency_transport(
                sal,
                (shown > 0).float(),
                t_eps,
                cmat,
                conflict="reference",
                penalty=1.0,
                max_iter=t_grid,
            )
            plans.append((apply_plan(inp, plan.source, t_grid, t_grid), plan))
        (input1, p1), (input2, p2) = plans
        plan_self, plan_partner = p1.matrix(), p2.matrix()

    mask = F.interpolate(mask, size=width)
    ratio = mask.reshape(batch, -1).mean(-1)
    mixed = mask * input1 + (1 - mask) * input2
    return {
        "mask_block": mask_block,
        "plan_self": plan_self,
        "plan_partner": plan_partner,
        "mixed": mixed,
        "ratio": ratio,
        "gc_unary_partner": u2,
        "gc_unary_self": u1,
        "gc_pw_x": w_x,
        "gc_pw_y": w_y,
    }
