"""Puzzle Mix and its named variants (Tables 2-8) in the registry."""

from __future__ import annotations

from typing import Any

from ..protocol import lap_stage
from ..puzzlemix import PuzzleMix
from ..puzzlemix_config import ABLATIONS, PuzzleMixConfig
from .augmix import AugMix
from .registry import register

# name -> config changes.  The "half" rows (half the epochs at twice the initial learning rate,
# Tables 2-4) differ in the training config only: their mixer is the full one.
VARIANTS: dict[str, dict[str, Any]] = {
    "puzzlemix": {},
    "puzzlemix_half": {},
    "puzzlemix_binary": ABLATIONS["binary"],
    "puzzlemix_mask_only": ABLATIONS["mask_only"],
    "puzzlemix_adv": ABLATIONS["adv"],
    "puzzlemix_half_adv": ABLATIONS["adv"],
    "puzzlemix_fgsm": ABLATIONS["fgsm"],
    "puzzlemix_nu0_nu1": ABLATIONS["nu0=nu1"],
}


def _factory(changes: dict[str, Any]):
    def build(preset: str = "reference", mean=None, std=None, **params: Any) -> PuzzleMix:
        config = PuzzleMixConfig.from_preset(preset, **{**changes, **params})
        return PuzzleMix(config, mean=mean, std=std)

    return build


for _name, _changes in VARIANTS.items():
    register(_name)(_factory(_changes))


class PuzzleMixAug(PuzzleMix):
    """Puzzle Mix (aug) (Table 6): Puzzle Mix between two AugMix images, saliency included:
    :meth:`apply` (and :meth:`apply_staged`) first replaces every image by one AugMix view (no JSD),
    then computes the saliency and mixes the augmented batch like Puzzle Mix."""

    name = "puzzlemix_aug"
    mixes_pixels = False  # the AugMix view is not made of the input pixels

    def __init__(self, config: PuzzleMixConfig, augmix: AugMix, *, mean=None, std=None) -> None:
        super().__init__(config, mean=mean, std=std)
        self.augmix = augmix

    def pre_transform(self, x, generator=None):
        """One AugMix view of every image (the augmentation of :meth:`apply`)."""
        return self.augmix.augment(x, generator)

    def _apply_in_stages(self, model, x, y, generator, timer):
        x = self.pre_transform(x, generator)
        lap_stage(timer, "mix")
        return super()._apply_in_stages(model, x, y, generator, timer)


@register("puzzlemix_aug")
def _puzzlemix_aug(preset: str = "reference", mean=None, std=None, **params: Any) -> PuzzleMixAug:
    aug_keys = {"severity", "width", "depth", "ops", "blend"}
    aug = AugMix(
        jsd=False, mean=mean, std=std, **{k: params.pop(k) for k in list(params) if k in aug_keys}
    )
    return PuzzleMixAug(PuzzleMixConfig.from_preset(preset, **params), aug, mean=mean, std=std)
