"""alpha-beta swap (Boykov, Veksler, Zabih 2001) through gco-wrapper (pyGCO), as the paper uses.

gco works on integer energies.  Two quantisations are offered:

* ``"reference"`` -- the official code's numerics (docs/reference-implementation.md §1a step 7):
  costs multiplied by 1000 * g^2 and truncated to int32, the label cost handed over as float32 so
  that gco runs in "float mode" (a further x1e5 on unary, x1e3 on edges, x1e2 on the label cost,
  with the silent int32 wrap-around that implies for peaked saliency).  Label order as the code:
  gco label t means z = 1 - t/m, swap starts from all-zero gco labels (z = 1).
* ``"scaled"`` -- a safe integer scaling: every term rounded at a resolution of about 1e-6 of the
  largest term, unary shifted per cell to be >= 0, nothing can overflow.
"""

from __future__ import annotations

import gco
import numpy as np
import torch

from ..parallel import run_chunks
from .energy import GridEnergy

_INT32_MAX = 2**31 - 1


def gco_swap_grid(
    unary: np.ndarray, label_cost: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray
) -> np.ndarray:
    """One call of gco's swap on a grid, arguments exactly as gco takes them -> labels (gh*gw,)."""
    # gco reads the raw buffers: they must be C-contiguous
    arrays = [np.ascontiguousarray(a) for a in (unary, label_cost, cost_v, cost_h)]
    return gco.cut_grid_graph(*arrays, n_iter=-1, algorithm="swap")


def reference_gco_arrays(
    unary: np.ndarray, pair_v: np.ndarray, pair_h: np.ndarray, grid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The arrays the official ``graphcut_multi`` hands to gco, for one example.

    unary (gh, gw, L) in our label order (k <-> z = k/m) holding the float costs; pair_v/pair_h
    the edge weights (beta_s + w).  Returns (unary_int32 in gco order, float32 label cost,
    cost_v int32, cost_h int32).
    """
    n_labels = unary.shape[-1]
    large_val = 1000 * grid**2
    # gco label t <-> z = 1 - t/m: reverse the label axis
    unary_gco = (large_val * unary[..., ::-1]).astype(np.int32)
    t = np.arange(n_labels)
    label_cost = ((t[:, None] - t[None, :]) ** 2 / (n_labels - 1) ** 2).astype(np.float32)
    cost_v = (large_val * pair_v.astype(np.float32)).astype(np.int32)
    cost_h = (large_val * pair_h.astype(np.float32)).astype(np.int32)
    return unary_gco, label_cost, cost_v, cost_h


def _scaled_arrays(
    unary: np.ndarray, pair_v: np.ndarray, pair_h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_labels = unary.shape[-1]
    m = n_labels - 1
    u = unary - unary.min(axis=-1, keepdims=True)  # per-cell constant: argmin unchanged
    cv, ch = pair_v / m**2, pair_h / m**2
    top = max(float(u.max(initial=0.0)), float(cv.max(initial=0.0)), float(ch.max(initial=0.0)))
    # total energy <= (cells + 2 * cells * m^2) * top * scale must stay below int32
    cells = unary.shape[0] * unary.shape[1]
    scale = min(1e6, _INT32_MAX / (4.0 * cells * (1 + 2 * m * m))) / max(top, 1e-300)
    t = np.arange(n_labels)
    label_cost = ((t[:, None] - t[None, :]) ** 2).astype(np.int32)
    u_int = np.rint(u[..., ::-1] * scale).astype(np.int32)
    return (
        u_int,
        label_cost,
        np.rint(cv * scale).astype(np.int32),
        np.rint(ch * scale).astype(np.int32),
    )


def solve_swap(energy: GridEnergy, quantize: str = "scaled", workers: int = 1) -> torch.Tensor:
    """alpha-beta swap per example -> labels (B, gh, gw) (k <-> z = k/m), on the energy's device.

    ``quantize="reference"`` needs a square grid (the code's 1000 * g^2 factor).  ``workers``
    threads share the examples (gco runs through ctypes, which releases the GIL); every example
    is its own problem, so the labels do not depend on it.
    """
    if quantize not in ("scaled", "reference"):
        raise ValueError(f"quantize must be 'scaled' or 'reference', got {quantize!r}")
    unary = energy.unary.detach().to("cpu", torch.float64).numpy()
    pv = energy.pair_v.detach().to("cpu", torch.float64).numpy()
    ph = energy.pair_h.detach().to("cpu", torch.float64).numpy()
    b, gh, gw, n_labels = unary.shape
    m = n_labels - 1
    out = np.zeros((b, gh, gw), dtype=np.int64)
    if m == 0:
        return torch.from_numpy(out).to(energy.unary.device)
    if quantize == "reference" and gh != gw:
        raise ValueError("quantize='reference' needs a square grid (the code's 1000*g^2 scale)")

    def solve(chunk: slice) -> None:
        for i in range(b)[chunk]:
            if quantize == "reference":
                arrays = reference_gco_arrays(unary[i], pv[i], ph[i], gh)
            else:
                arrays = _scaled_arrays(unary[i], pv[i], ph[i])
            lab = gco_swap_grid(*arrays)
            out[i] = (m - lab).reshape(gh, gw)  # gco label t <-> k = m - t

    run_chunks(solve, b, workers)
    return torch.from_numpy(out).to(energy.unary.device)
