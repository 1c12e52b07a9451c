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

import functools
import threading
from collections.abc import Sequence

import numpy as np
import torch
from gco import pygco
from gco.cgco import _cgco

from ..parallel import chunks, map_chunks, run_chunks
from .energy import GridEnergy

_INT32_MAX = 2**31 - 1


# gco's C wrapper keeps every graph in one global std::map, unguarded: creating or destroying a
# graph while another thread looks one up is a data race.  Every use of gco here holds this lock
# while graphs are created or destroyed; only the swaps themselves (map look-ups, then work on
# their own graph) run concurrently, while nothing writes the map.
GCO_LOCK = threading.Lock()


def gco_swap_grid(
    unary: np.ndarray, label_cost: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray
) -> np.ndarray:
    """One call of gco's swap on a grid, arguments exactly as ``gco.cut_grid_graph`` takes them
    -> labels (gh*gw,) (:func:`gco_swap_grids` of one problem)."""
    return gco_swap_grids([(unary, label_cost, cost_v, cost_h)])[0]


@functools.lru_cache(maxsize=64)
def _grid_edges(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """gco.cut_grid_graph's edge list of a grid (vertical edges, then horizontal), as intc."""
    v_from, h_from, v_to, h_to = pygco.get_images_edges_vh(height, width)
    return np.r_[v_from, h_from].astype(np.intc), np.r_[v_to, h_to].astype(np.intc)


class _GridProblem:
    """One gco graph set up exactly as ``gco.cut_grid_graph`` sets it up (same conversions, same
    order of calls), its buffers kept alive until the graph is destroyed."""

    def __init__(
        self, unary: np.ndarray, label_cost: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray
    ) -> None:
        arrays = (unary, label_cost, cost_v, cost_h)
        is_float = any(a.dtype.kind == "f" for a in arrays)
        height, width, n_labels = unary.shape

        def convert(a: np.ndarray, precision: int) -> np.ndarray:
            return (a * precision).astype(np.intc) if is_float else a.astype(np.intc)

        self.n_sites = height * width
        self.unary = convert(unary.reshape(self.n_sites, n_labels), pygco._UNARY_FLOAT_PRECISION)
        self.s1, self.s2 = _grid_edges(height, width)
        weights = np.r_[cost_v.flatten(), cost_h.flatten()]
        self.weights = convert(weights, pygco._PAIRWISE_FLOAT_PRECISION)
        self.smooth = convert(label_cost, pygco._SMOOTH_COST_PRECISION)
        handle = np.empty(1, dtype=np.intc)
        _cgco.gcoCreateGeneralGraph(np.intc(self.n_sites), np.intc(n_labels), handle)
        self.handle = handle[0]
        _cgco.gcoSetDataCost(self.handle, self.unary)
        _cgco.gcoSetAllNeighbors(self.handle, self.s1, self.s2, self.weights, np.intc(self.s1.size))
        _cgco.gcoSetSmoothCost(self.handle, self.smooth)

    def swap(self) -> np.ndarray:
        energy = np.empty(1, dtype=np.longlong)
        _cgco.gcoSwap(self.handle, np.intc(-1), energy)
        labels = np.empty(self.n_sites, dtype=np.intc)
        _cgco.gcoGetLabels(self.handle, labels)
        return labels

    def destroy(self) -> None:
        _cgco.gcoDestroyGraph(self.handle)


def gco_swap_grids(
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], workers: int = 1
) -> list[np.ndarray]:
    """:func:`gco_swap_grid` for many grids -> labels per problem, bit-identical to calling
    ``gco.cut_grid_graph`` on each.  The graphs are created up front (without pygco's Python
    overhead per call), swapped by ``workers`` threads (gco runs through ctypes, which
    releases the GIL), then destroyed."""
    out: list[np.ndarray] = [np.empty(0)] * len(problems)
    with GCO_LOCK:
        graphs: list[_GridProblem] = []
        try:
            for arrays in problems:
                graphs.append(_GridProblem(*(np.ascontiguousarray(a) for a in arrays)))

            def solve(chunk: slice) -> None:
                for i in range(len(graphs))[chunk]:
                    out[i] = graphs[i].swap()

            run_chunks(solve, len(graphs), workers)
        finally:
            for graph in graphs:
                graph.destroy()
    return out


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


def solve_swap(
    energy: GridEnergy, quantize: str = "scaled", workers: int = 1, pool: str = "thread"
) -> torch.Tensor:
    """alpha-beta swap per example -> labels (B, gh, gw) (k <-> z = k/m), on the energy's device.

    ``quantize="reference"`` needs a square grid (the code's 1000 * g^2 factor).  ``workers``
    threads (:func:`gco_swap_grids`) or processes (``pool="process"``, each solving a chunk of
    the examples) share the examples; every example is its own problem, so the labels do not
    depend on them.
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

    problems = []
    for i in range(b):
        if quantize == "reference":
            problems.append(reference_gco_arrays(unary[i], pv[i], ph[i], gh))
        else:
            problems.append(_scaled_arrays(unary[i], pv[i], ph[i]))
    if pool == "process" and workers > 1:
        parts = map_chunks(
            gco_swap_grids, [(problems[c],) for c in chunks(b, workers)], workers, "process"
        )
        found = [lab for part in parts for lab in part]
    else:
        found = gco_swap_grids(problems, workers)
    for i, lab in enumerate(found):
        out[i] = (m - lab).reshape(gh, gw)  # gco label t <-> k = m - t
    return torch.from_numpy(out).to(energy.unary.device)
