"""AugMix (Hendrycks et al. 2020) with its Jensen-Shannon consistency loss.

The image operations are PIL's (``ImageOps`` and ``Image.transform``), the library the official
AugMix code uses, with its magnitudes: level ~ U(0.1, severity), int_param = int(level max / 10),
float_param = level max / 10, random signs for the geometric ops, bilinear resampling.
Per image: w ~ Dirichlet(1, 1, 1) over ``width`` = 3 chains, each of depth uniform in {1, 2, 3}
(``depth`` = -1), each step an operation drawn uniformly at ``severity`` 3;
x_aug = (1 - m) x + m sum_i w_i chain_i(x), m ~ Beta(1, 1) (official: per image; the Puzzle Mix
protocol: once per batch).  Operations: the official nine (autocontrast, equalize, posterize,
rotate, solarize, shear_x/y, translate_x/y) or the Puzzle Mix protocol's eight (autocontrast
commented out); the affine size is the image's own (the Puzzle Mix port; the official code
hard-codes 32).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .._checks import check_choice, check_generator, check_images
from .._random import numpy_rng
from ..protocol import Mixer, MixResult
from .registry import register

Op = Callable[[Image.Image, float, np.random.Generator], Image.Image]


def _int_param(level: float, maxval: float) -> int:
    return int(level * maxval / 10)  # augmix augmentations.py


def _float_param(level: float, maxval: float) -> float:
    return float(level) * maxval / 10


def _sign(rng: np.random.Generator) -> int:
    return -1 if rng.random() < 0.5 else 1


def _affine(img: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    return img.transform(
        img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR
    )


OPS: dict[str, Op] = {
    "autocontrast": lambda img, level, rng: ImageOps.autocontrast(img),
    "equalize": lambda img, level, rng: ImageOps.equalize(img),
    "posterize": lambda img, level, rng: ImageOps.posterize(img, 4 - _int_param(level, 4)),
    "rotate": lambda img, level, rng: img.rotate(
        _sign(rng) * _int_param(level, 30), resample=Image.Resampling.BILINEAR
    ),
    "solarize": lambda img, level, rng: ImageOps.solarize(img, 256 - _int_param(level, 256)),
    "shear_x": lambda img, level, rng: _affine(
        img, (1, _sign(rng) * _float_param(level, 0.3), 0, 0, 1, 0)
    ),
    "shear_y": lambda img, level, rng: _affine(
        img, (1, 0, 0, _sign(rng) * _float_param(level, 0.3), 1, 0)
    ),
    "translate_x": lambda img, level, rng: _affine(
        img, (1, 0, _sign(rng) * _int_param(level, img.size[0] / 3), 0, 1, 0)
    ),
    "translate_y": lambda img, level, rng: _affine(
        img, (1, 0, 0, 0, 1, _sign(rng) * _int_param(level, img.size[1] / 3))
    ),
}
OP_LISTS = {
    "official": tuple(OPS),
    "puzzlemix": tuple(k for k in OPS if k != "autocontrast"),
}


def jensen_shannon(*logits: torch.Tensor) -> torch.Tensor:
    """JS consistency of AugMix: (1/k) sum_p KL(p || M), M = clamp(mean p, 1e-7, 1), summed over
    classes and averaged over the batch (PyTorch kl_div(log M, p, 'batchmean'))."""
    probs = [F.softmax(lg, dim=1) for lg in logits]
    mixture = torch.clamp(torch.stack(probs).mean(0), 1e-7, 1).log()
    return sum(F.kl_div(mixture, p, reduction="batchmean") for p in probs) / len(probs)


def augmix_loss(
    logits_clean: torch.Tensor,
    logits_aug1: torch.Tensor,
    logits_aug2: torch.Tensor,
    y: torch.Tensor,
    weight: float = 12.0,
) -> torch.Tensor:
    """CE(clean, y) + weight * JS(clean, aug1, aug2) (AugMix, weight 12)."""
    return F.cross_entropy(logits_clean, y) + weight * jensen_shannon(
        logits_clean, logits_aug1, logits_aug2
    )


@register("augmix")
class AugMix(Mixer):
    """AugMix as a batch transform with the common interface.  ``mix`` returns the first
    augmented view as ``x`` and, with ``jsd``, both views in ``info["views"]`` for
    :func:`augmix_loss`; labels are unchanged (one-hot).  x (B, C, H, W) with C = 1 or 3 (PIL
    modes "L" / "RGB") as the model sees it: ``mean``/``std`` map it to [0, 1] (None: already
    there); images are processed as 8-bit, like the PIL pipeline.
    """

    name = "augmix"
    channels = (1, 3)
    image_info = ("views",)
    mixes_pixels = False

    def __init__(
        self,
        severity: int = 3,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        ops: str = "puzzlemix",
        blend: str = "batch",
        jsd: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(num_classes)
        check_choice("ops", ops, tuple(OP_LISTS))
        check_choice("blend", blend, ("batch", "image"))
        if not 1 <= severity <= 10:
            raise ValueError(f"severity must be in [1, 10], got {severity}")
        if width < 1 or depth == 0 or depth < -1:
            raise ValueError(f"width must be >= 1 and depth -1 or >= 1, got {width}, {depth}")
        if not alpha > 0:  # Beta(alpha, alpha) and Dirichlet(alpha) need alpha > 0
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.severity, self.width, self.depth, self.alpha = severity, width, depth, alpha
        self.ops, self.blend, self.jsd, self.mean, self.std = ops, blend, jsd, mean, std

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = x.shape[1]
        if self.mean is None or self.std is None:
            return torch.zeros(1, c, 1, 1, device=x.device), torch.ones(1, c, 1, 1, device=x.device)
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return mean, std

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One AugMix view of every image: x (B, C, H, W), C = 1 or 3, float (finite) -> same
        shape and space."""
        check_generator(generator)
        check_images(x)
        if x.dtype == torch.uint8 or x.shape[1] not in self.channels:
            raise ValueError(
                f"augment takes float x with 1 or 3 channels, got {x.dtype} with C={x.shape[1]} "
                "(uint8 images: use mix)"
            )
        return self._augment(x, generator)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        rng = numpy_rng(generator)
        mean, std = self._stats(x)
        pix = ((x.float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        names = OP_LISTS[self.ops]
        m_batch = float(rng.beta(self.alpha, self.alpha))
        out = []
        for img_t in pix:
            arr = img_t.permute(1, 2, 0).numpy()
            img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
            w = rng.dirichlet([self.alpha] * self.width)
            mix = np.zeros(arr.shape[:2] + ((1,) if arr.shape[2] == 1 else (arr.shape[2],)))
            for i in range(self.width):
                chain = img
                depth = self.depth if self.depth > 0 else int(rng.integers(1, 4))
                for _ in range(depth):
                    op = OPS[names[int(rng.integers(len(names)))]]
                    chain = op(chain, float(rng.uniform(0.1, self.severity)), rng)
                mix += w[i] * np.asarray(chain, dtype=np.float64).reshape(mix.shape) / 255
            m = m_batch if self.blend == "batch" else float(rng.beta(self.alpha, self.alpha))
            blended = (1 - m) * arr.astype(np.float64) / 255 + m * mix
            out.append(torch.from_numpy(blended).permute(2, 0, 1).float())
        aug = torch.stack(out).to(x.device)
        return ((aug - mean) / std).to(x.dtype)

    def _mix(self, x, y, saliency, *, generator) -> MixResult:
        targets = self._targets(x, y)
        b = x.shape[0]
        views = [self._augment(x, generator) for _ in range(2 if self.jsd else 1)]
        ident = torch.arange(b, device=x.device)
        info = {"views": tuple(views)}
        return MixResult(views[0], targets, ident, torch.ones(b, device=x.device), info)

    def loss(self, model, x, y, mixed, criterion) -> torch.Tensor:
        """With ``jsd``: :func:`augmix_loss` of the clean batch and the two views (the run's
        criterion is not used, as in AugMix's code); without: criterion on the single view."""
        if not self.jsd:
            return criterion(model(mixed.x), mixed.y)
        a1, a2 = mixed.info["views"]
        lc, l1, l2 = model(torch.cat([x, a1, a2])).chunk(3)
        return augmix_loss(lc, l1, l2, y)
