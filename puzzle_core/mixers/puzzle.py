"""Puzzle Mix and its named variants (Tables 2-8) in the registry."""

from __future__ import annotations

from typing import Any

from ..puzzlemix import ABLATIONS, PuzzleMix, PuzzleMixConfig
from .augmix import AugMix
from .registry import register

# name -> (config changes, training schedule).  "half" = half the epochs at twice the initial
# learning rate (Tables 2-4): a training-config matter, the mixer is the full one.
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "puzzlemix": ({}, "full"),
    "puzzlemix_half": ({}, "half"),
    "puzzlemix_binary": (ABLATIONS["binary"], "full"),
    "puzzlemix_mask_only": (ABLATIONS["mask_only"], "full"),
    "puzzlemix_adv": (ABLATIONS["adv"], "full"),
    "puzzlemix_half_adv": (ABLATIONS["adv"], "half"),
    "puzzlemix_fgsm": (ABLATIONS["fgsm"], "full"),
    "puzzlemix_nu0_nu1": (ABLATIONS["nu0=nu1"], "full"),
}


def _factory(changes: dict[str, Any], schedule: str):
    def build(preset: str = "reference", mean=None, std=None, **params: Any) -> PuzzleMix:
        mixer = PuzzleMix(
            PuzzleMixConfig.from_preset(preset, **{**changes, **params}), mean=mean, std=std
        )
        mixer.schedule = schedule  # type: ignore[attr-defined]
        return mixer

    return build


for _name, (_changes, _schedule) in VARIANTS.items():
    register(_name)(_factory(_changes, _schedule))


class PuzzleMixAug(PuzzleMix):
    """Puzzle Mix (aug) (Table 6): Puzzle Mix between two AugMix images, saliency included.
    The training loop applies :meth:`pre_transform` (one AugMix view per image, no JSD) first,
    then computes the saliency and mixes the augmented batch like Puzzle Mix."""

    name = "puzzlemix_aug"

    def __init__(self, config: PuzzleMixConfig, augmix: AugMix, *, mean=None, std=None) -> None:
        super().__init__(config, mean=mean, std=std)
        self.augmix = augmix

    def pre_transform(self, x, generator=None):
        return self.augmix.augment(x, generator)


@register("puzzlemix_aug")
def _puzzlemix_aug(preset: str = "reference", mean=None, std=None, **params: Any) -> PuzzleMixAug:
    aug_keys = {"severity", "width", "depth", "ops", "blend"}
    aug = AugMix(
        jsd=False, mean=mean, std=std, **{k: params.pop(k) for k in list(params) if k in aug_keys}
    )
    mixer = PuzzleMixAug(PuzzleMixConfig.from_preset(preset, **params), aug, mean=mean, std=std)
    mixer.schedule = "full"  # type: ignore[attr-defined]
    return mixer
