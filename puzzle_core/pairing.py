"""Who mixes with whom: a component usable by every method (GuidedMixup Section 4.1, Eq. 1,
Table 8).  A pairing is a permutation ``perm`` (B,): example i mixes with partner perm[i].

* random: a uniform permutation (the Puzzle Mix reference; fixed points allowed);
* greedy: GuidedMixup's Algorithm 1 as its code implements it (one cycle cover: first edge is the
  largest distance, then each step goes to the farthest unvisited example; no self pairs, no
  symmetric pairs, every image once as source and once as target).  The paper's pseudo-code
  blanks the wrong column and can close the cycle early; the code's rule is used (docs/baselines.md
  §8.3);
* exact: the optimum of Eq. 1 by enumeration, for small batches (the oracle).

The Eq. 1 weights w_ij = ||z_i - z_j||_2 are computed as the official code computes them (float32,
explicit differences) and are exactly symmetric, so the ties w_ij = w_ji go to the first index in
row-major order, as ``np.argmax`` in the official ``onecycle_cover`` (docs/baselines.md §8.3).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ._checks import check_choice, check_rank

PAIRINGS = ("random", "greedy", "exact")
DISTANCE_FORMS = ("official", "gram")
_CHUNK_ELEMENTS = 1 << 24  # at most ~16M floats in the (rows, B, N) difference temporary


def saliency_distances(maps: torch.Tensor, form: str = "official") -> torch.Tensor:
    """w_ij = || z_i - z_j ||_2 between flattened maps (B, ...) -> (B, B) (GuidedMixup Eq. 1
    weights), exactly symmetric (w == w.T bitwise) with a zero diagonal.

    * ``form="official"`` (default): GuidedMixup's ``distance_function(a, b, 'l2')``
      (``Utils/distance.py``; root ``mixup.py``): the norm of the explicit differences
      ``(z_i - z_j).norm()`` in float32 (its maps are float32 and ``onecycle_cover`` is typed
      float32), returned as float32.  Computed a block of rows at a time instead of the code's
      (B, B, N) temporary (same values; the code needs B^2 N floats) and the upper triangle
      mirrored, so symmetry does not rest on the reduction order.
    * ``form="gram"``: the Gram (cdist) form in float64, cheaper for large maps; its rounding is
      not symmetric (w_ij - w_ji ~ 1e-16), so it is symmetrised, (w + w.T) / 2, and its
      diagonal zeroed.  Not the code's values: near-ties can go the other way.

    Exact symmetry is what makes the greedy rule's ties (w_ij = w_ji for the largest distance)
    go to the first index in row-major order, as in the official code."""
    check_choice("form", form, DISTANCE_FORMS)
    b = maps.shape[0]
    if form == "gram":
        flat = maps.reshape(b, -1).double()
        w = torch.cdist(flat, flat, compute_mode="use_mm_for_euclid_dist").clamp(min=0)
        w = (w + w.T) / 2  # exactly symmetric: IEEE addition commutes
        return w.fill_diagonal_(0)
    flat = maps.reshape(b, -1).float()
    rows = max(1, _CHUNK_ELEMENTS // max(1, b * flat.shape[1]))
    blocks = [(flat[i : i + rows, None] - flat[None]).norm(dim=-1) for i in range(0, b, rows)]
    w = torch.cat(blocks) if blocks else flat.new_zeros(0, 0)
    upper = torch.triu(w, diagonal=1)
    return upper + upper.T  # the row-major-first (upper) entries, mirrored; diagonal 0


def pairing_objective(w: torch.Tensor, perm: torch.Tensor) -> float:
    """sum_i w[i, perm[i]] (the objective of Eq. 1), summed in float64."""
    return float(w.double().gather(1, perm.reshape(-1, 1).to(w.device)).sum())


def is_one_cycle(perm: torch.Tensor) -> bool:
    """True when ``perm`` is a single cycle through every example (for B >= 3 this means no
    fixed point and no 2-cycle; B = 2 is the swap, B = 1 the self pair)."""
    p = perm.tolist()
    b = len(p)
    if sorted(p) != list(range(b)):
        return False
    seen, i = 0, 0
    for _ in range(b):
        i = p[i]
        seen += 1
        if i == 0:
            break
    return seen == b


def greedy_pairing(w: torch.Tensor) -> torch.Tensor:
    """GuidedMixup's greedy one-cycle cover (Algorithm 1 as ``pairing.pyx onecycle_cover``
    implements it): w (B, B) symmetric distances -> perm (B,) on w's device.  Deterministic;
    ties go to the first index in row-major order (``np.argmax``), so with an exactly symmetric w
    (:func:`saliency_distances`) the first edge (i0, j) of a tie w[i0, j] = w[j, i0] has i0 < j.
    w is read in float64 (a float32 matrix converts exactly, so its ties are kept)."""
    check_rank("w", w, 2, "(B, B)")
    b = w.shape[0]
    if w.shape[1] != b:
        raise ValueError(f"w must be square (B, B), got {tuple(w.shape)}")
    if b == 1:
        return torch.zeros(1, dtype=torch.long, device=w.device)
    a = w.detach().double().cpu().numpy().copy()  # never mutate the caller's matrix
    np.fill_diagonal(a, -np.inf)
    perm = np.full(b, -1, dtype=np.int64)
    start, j = np.unravel_index(int(np.argmax(a)), a.shape)  # the largest distance first
    perm[start] = j
    a[:, start] = -np.inf  # the start is closed last
    i = j
    for _ in range(b - 2):
        a[:, i] = -np.inf  # blank the current source's column (the code's rule)
        j = int(np.argmax(a[i]))
        perm[i] = j
        i = j
    perm[i] = start  # close the cycle
    return torch.from_numpy(perm).to(w.device)


def exact_pairing(w: torch.Tensor, max_batch: int = 9) -> torch.Tensor:
    """argmax over permutations with no self pairs and no symmetric pairs (p_ij + p_ji <= 1)
    of sum w_ij p_ij (Eq. 1), by enumeration -> perm (B,).  An oracle for B <= ``max_batch``."""
    b = w.shape[0]
    if b > max_batch:
        raise ValueError(
            f"exact_pairing enumerates permutations: batch {b} > max_batch={max_batch}"
        )
    if b < 3:
        return torch.arange(b).roll(1).to(w.device) if b == 2 else torch.zeros(1, dtype=torch.long)
    a = w.detach().double().cpu().numpy()
    perms = np.array(list(itertools.permutations(range(b))), dtype=np.int64)
    idx = np.arange(b)
    ok = (perms != idx).all(1) & (perms[np.arange(len(perms))[:, None], perms] != idx).all(1)
    cand = perms[ok]
    scores = a[idx, cand].sum(1)
    return torch.from_numpy(cand[int(np.argmax(scores))]).to(w.device)


def pairing_maps(x: torch.Tensor) -> torch.Tensor:
    """The maps GuidedMixup pairs by (also for the other methods of its Table 8): spectral
    residual saliency blurred (7, 3) once more and normalised to sum 1 -> (B, H, W)."""
    from .saliency import gaussian_blur, spectral_residual_saliency

    s = gaussian_blur(spectral_residual_saliency(x))
    return s / s.flatten(1).sum(1).clamp(min=1e-12).view(-1, 1, 1)


def make_pairing(
    kind: str,
    batch: int,
    *,
    maps: torch.Tensor | None = None,
    images: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    distance: str = "official",
) -> torch.Tensor:
    """Dispatch: "random" draws a permutation; "greedy"/"exact" use the saliency ``maps``
    (B, ...), or the spectral-residual maps of ``images`` (B, C, H, W) when maps are None, with
    the distances of :func:`saliency_distances` (``distance`` is its ``form``)."""
    check_choice("pairing", kind, PAIRINGS)
    check_choice("distance", distance, DISTANCE_FORMS)
    if kind == "random":
        return torch.randperm(batch, generator=generator).to(device)
    if maps is None and images is not None:
        maps = pairing_maps(images)
    if maps is None:
        raise ValueError(f"pairing={kind!r} needs saliency maps (B, H, W) or the images")
    w = saliency_distances(maps, distance)
    return (greedy_pairing(w) if kind == "greedy" else exact_pairing(w)).to(device)
