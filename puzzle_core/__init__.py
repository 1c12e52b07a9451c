"""puzzle_core: Puzzle Mix (Kim, Choo, Song, ICML 2020) and the saliency-mixup family."""

from .losses import bce_on_softmax, soft_cross_entropy
from .mask.energy import GridEnergy, boundary_distances, puzzle_energy
from .mask.exact import solve_exact
from .mask.swap import solve_swap
from .puzzlemix import AdversarialNoise, Prepared, PuzzleMix, PuzzleMixResult, solve_mask
from .puzzlemix_config import ABLATIONS, PuzzleMixConfig
from .saliency import SaliencyResult, compute_saliency, pool_saliency, reduce_gradient
from .transport import (
    TransportPlan,
    apply_plan,
    exact_transport,
    grid_cost_matrix,
    masked_transport,
    transport_cost,
)

__all__ = [
    "ABLATIONS",
    "AdversarialNoise",
    "GridEnergy",
    "PuzzleMixResult",
    "Prepared",
    "PuzzleMix",
    "PuzzleMixConfig",
    "SaliencyResult",
    "TransportPlan",
    "apply_plan",
    "bce_on_softmax",
    "boundary_distances",
    "compute_saliency",
    "exact_transport",
    "grid_cost_matrix",
    "masked_transport",
    "pool_saliency",
    "puzzle_energy",
    "reduce_gradient",
    "soft_cross_entropy",
    "solve_exact",
    "solve_mask",
    "solve_swap",
    "transport_cost",
]
__version__ = "0.1.0"
