"""The mixup family behind one interface: ``build(name, **params)`` and ``available()``.

Every mixer is constructed once and called on a batch: ``x_mix, y_mix = mixer(x, y,
saliency=None, generator=None)``; ``mixer.saliency`` says what it needs (None, "image" computed
inside, or "input_gradient" from the training loop, as Puzzle Mix)."""

from ..pairing import exact_pairing, greedy_pairing, pairing_objective, saliency_distances
from ..protocol import Mixer, MixResult
from ..saliency import spectral_residual_saliency
from . import augmix, basic, boxes, comixup, guided, puzzle, snapmix  # noqa: F401  (registration)
from .augmix import AugMix, augmix_loss, jensen_shannon
from .basic import InputMixup, ManifoldMixup, ManifoldPlan, Vanilla
from .boxes import CutMix, SaliencyMix, official_box, puzzlemix_box
from .comixup import CoMixup
from .guided import GuidedMixup
from .registry import available, build, build_for_data
from .snapmix import SnapMix, class_activation_spm, semantic_percent_map

__all__ = [
    "AugMix",
    "CoMixup",
    "CutMix",
    "GuidedMixup",
    "InputMixup",
    "ManifoldMixup",
    "ManifoldPlan",
    "MixResult",
    "Mixer",
    "SaliencyMix",
    "SnapMix",
    "Vanilla",
    "augmix_loss",
    "available",
    "build",
    "build_for_data",
    "class_activation_spm",
    "exact_pairing",
    "greedy_pairing",
    "jensen_shannon",
    "official_box",
    "pairing_objective",
    "puzzlemix_box",
    "saliency_distances",
    "semantic_percent_map",
    "spectral_residual_saliency",
]
