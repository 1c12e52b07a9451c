"""``synthetic-objects``: an offline, object-centric stand-in for CIFAR (32x32) and Tiny-ImageNet
(64x64), deterministic from a seed and generated in seconds without network access.

Each image shows one labelled object on a background:

* background: a random crop (random zoom) of one of scikit-image's bundled grey photographs
  (brick, grass, gravel, moon, camera, coins, text, cell, clock, page), tinted with a random
  colour and brightness;
* object: a silhouette (disk, square, triangle, star, cross, ring, crescent, horse, arrow, tee,
  heart, ell; the horse is scikit-image's real ``horse`` silhouette) at a random position,
  scale (about 40-75 % of the image side), aspect, rotation (+-25 degrees) and mirror, filled
  with a random crop of one of the bundled colour photographs (astronaut, chelsea, coffee,
  rocket, hubble deep field, immunohistochemistry, colorwheel, retina, cat) blended with a
  random colour;
* the class is the silhouette only: textures, colours, brightness and placement are drawn
  independently of the label, so a model has to recognise the shape;
* objects are composited with a hard mask and always lie wholly inside the image, so
  ``masks[i]`` is exactly the set of pixels that show object ``i``: the share of an object that
  survives a mixing mask ``z`` is ``(z * mask).sum() / mask.sum()``.

The scene parameters are drawn in image-relative units before any pixel is rendered, so the
32 px and 64 px versions of the same (seed, split, n_per_class, num_classes) show the same scenes.
Train and test use independent random streams of the same seed.  Bit-identical across runs on
one platform; another CPU / library build may round an occasional pixel differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .synthetic_assets import CLASSES, silhouette_templates, texture_sources

NAME = "synthetic-objects"
IMAGE_SIZES = (32, 64)
_CHUNK = 1024  # images rendered per vectorised step
# Scene distribution (image-relative units).
_SCALE = (0.45, 0.82)  # side of the silhouette's template square
_ASPECT = (0.85, 1.18)
_MAX_ANGLE = np.deg2rad(25.0)
_BG_ZOOM = (0.12, 0.5)  # fraction of the source side a background crop covers
_FG_ZOOM = (0.08, 0.35)
_MIN_GAP = 0.18  # minimal mean-luminance gap between object and background


def _lum(x: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of x (m, 3, 1, 1) -> (m, 1, 1, 1)."""
    return 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _crops(
    src: torch.Tensor, idx: np.ndarray, oy: np.ndarray, ox: np.ndarray, f: np.ndarray, size: int
) -> np.ndarray:
    """Bilinear crops of ``src`` (K, C, T, T): image n samples source idx[n] on the square with
    top-left corner (oy[n], ox[n]) and side f[n] (fractions of the source side) at
    ``size`` x ``size`` pixel centres.  Returns float32 (n, C, size, size).  Images that share a
    source are sampled by one ``grid_sample`` call."""
    n, c = len(idx), src.shape[1]
    out = np.empty((n, c, size, size), dtype=np.float32)
    g = (np.arange(size) + 0.5) / size
    for k in np.unique(idx):
        sel = np.nonzero(idx == k)[0]
        grid = np.empty((len(sel), size, size, 2), dtype=np.float32)
        grid[..., 0] = ((ox[sel, None] + g[None] * f[sel, None]) * 2 - 1)[:, None, :]
        grid[..., 1] = ((oy[sel, None] + g[None] * f[sel, None]) * 2 - 1)[:, :, None]
        r = F.grid_sample(
            src[k : k + 1],
            torch.from_numpy(grid).reshape(1, -1, size, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )  # (1, C, len(sel) * size, size)
        out[sel] = r[0].reshape(c, len(sel), size, size).transpose(0, 1).numpy()
    return out


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticArrays:
    """A generated split.

    data: uint8 (N, H, W, 3) RGB images.
    targets: int64 (N,) class indices into ``classes``.
    masks: bool (N, H, W), True exactly on the object's pixels.
    boxes: int64 (N, 4) the masks' bounding boxes (y0, x0, y1, x1), end exclusive.
    scales: float64 (N,) side of the silhouette's template square / image side.
    aspects: float64 (N,) template width / height; angles: float64 (N,) rotation, radians.
    classes: the class names.
    foreground, background: uint8 (N, H, W, 3) the two layers (only with ``layers=True``), so
        that ``data == where(masks[..., None], foreground, background)``.
    """

    data: np.ndarray
    targets: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    scales: np.ndarray
    aspects: np.ndarray
    angles: np.ndarray
    classes: tuple[str, ...]
    foreground: np.ndarray | None = None
    background: np.ndarray | None = None


def _check_args(n_per_class: int, image_size: int, num_classes: int, seed: int) -> None:
    for name, v, lo in (("n_per_class", n_per_class, 1), ("image_size", image_size, 8)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(CLASSES):
        raise ValueError(
            f"num_classes must be an integer in [2, {len(CLASSES)}], got {num_classes!r}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


def _draw_scenes(
    rng: np.random.Generator, n_per_class: int, num_classes: int, n_grey: int, n_colour: int
) -> dict[str, np.ndarray]:
    """Every random scene parameter, in image-relative units: arrays of shape (N,) or (N, 3)."""
    n = n_per_class * num_classes
    targets = rng.permutation(np.repeat(np.arange(num_classes), n_per_class))
    scale = rng.uniform(*_SCALE, n)
    aspect = np.exp(rng.uniform(np.log(_ASPECT[0]), np.log(_ASPECT[1]), n))
    angle = rng.uniform(-_MAX_ANGLE, _MAX_ANGLE, n)
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    hx, hy = scale / 2 * np.sqrt(aspect), scale / 2 / np.sqrt(aspect)
    c, s = np.abs(np.cos(angle)), np.abs(np.sin(angle))
    ex, ey = c * hx + s * hy, s * hx + c * hy  # half extents of the rotated template square
    shrink = np.minimum(1.0, 0.49 / np.maximum(ex, ey))  # keep the object inside the image
    hx, hy, ex, ey, scale = hx * shrink, hy * shrink, ex * shrink, ey * shrink, scale * shrink
    cx = ex + rng.random(n) * (1 - 2 * ex)
    cy = ey + rng.random(n) * (1 - 2 * ey)
    bg_idx = rng.integers(0, n_grey, n)
    bg_f = rng.uniform(*_BG_ZOOM, n)
    bg_oy, bg_ox = rng.random((2, n)) * (1 - bg_f)
    fg_idx = rng.integers(0, n_colour, n)
    fg_f = rng.uniform(*_FG_ZOOM, n)
    fg_oy, fg_ox = rng.random((2, n)) * (1 - fg_f)
    # Mean luminances: the object is brighter or darker than the background by >= _MIN_GAP.
    bg_lum = rng.uniform(0.15, 0.85, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    gap = rng.uniform(_MIN_GAP, 0.45, n)
    fg_lum = bg_lum + sign * gap
    fg_lum = np.where((fg_lum < 0.08) | (fg_lum > 0.95), bg_lum - sign * gap, fg_lum)
    bg_tint = rng.uniform(0.55, 1.45, (n, 3))
    return dict(
        targets=targets,
        scale=scale,
        aspect=aspect,
        angle=angle,
        mirror=mirror,
        cx=cx,
        cy=cy,
        hx=hx,
        hy=hy,
        bg_idx=bg_idx,
        bg_f=bg_f,
        bg_oy=bg_oy,
        bg_ox=bg_ox,
        fg_idx=fg_idx,
        fg_f=fg_f,
        fg_oy=fg_oy,
        fg_ox=fg_ox,
        bg_lum=bg_lum,
        fg_lum=np.clip(fg_lum, 0.08, 0.95),
        bg_contrast=rng.uniform(0.3, 1.0, n),
        fg_contrast=rng.uniform(0.5, 1.2, n),
        bg_tint=bg_tint / bg_tint.mean(1, keepdims=True),
        fg_colour=rng.uniform(0.0, 1.0, (n, 3)),
        fg_blend=rng.uniform(0.2, 0.6, n),
    )


_PIXEL_PARAMS = (
    "cx cy hx hy mirror bg_lum fg_lum bg_contrast fg_contrast bg_tint fg_colour fg_blend".split()
)


def _render(
    sc: dict[str, np.ndarray], size: int, layers: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Pixels of the scenes ``sc`` at ``size`` x ``size``: (data (N, S, S, 3) uint8,
    masks (N, S, S) bool, foreground, background (N, S, S, 3) uint8 or None)."""
    templates = silhouette_templates()
    grey, colour = texture_sources()
    n = len(sc["targets"])
    f32 = {k: sc[k].astype(np.float32) for k in _PIXEL_PARAMS}
    f32["cos"] = np.cos(sc["angle"]).astype(np.float32)
    f32["sin"] = np.sin(sc["angle"]).astype(np.float32)
    data = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool)
    fg_out = np.empty_like(data) if layers else None
    bg_out = np.empty_like(data) if layers else None
    g = ((np.arange(size) + 0.5) / size).astype(np.float32)
    tres = templates.shape[1]
    flat_templates = templates.reshape(-1)
    for a in range(0, n, _CHUNK):
        sl = slice(a, min(n, a + _CHUNK))
        # Per-image parameters shaped (m, 1, 1) for the mask and (m, C, 1, 1) for the pixels.
        p = {k: v[sl, None, None] for k, v in f32.items() if v.ndim == 1}
        q = {k: v[sl].reshape(len(v[sl]), -1, 1, 1) for k, v in f32.items()}

        # Silhouette: inverse-map each pixel centre into the template square [-1, 1]^2.
        dx = g[None, None, :] - p["cx"]
        dy = g[None, :, None] - p["cy"]
        u = (p["cos"] * dx + p["sin"] * dy) * (p["mirror"] / p["hx"])
        v = (p["cos"] * dy - p["sin"] * dx) / p["hy"]
        inside = (np.abs(u) < 1) & (np.abs(v) < 1)
        col = np.clip(((u + 1) * (tres / 2)).astype(np.intp), 0, tres - 1)
        row = np.clip(((v + 1) * (tres / 2)).astype(np.intp), 0, tres - 1)
        mk = inside & flat_templates[(sc["targets"][sl, None, None] * tres + row) * tres + col]
        masks[sl] = mk

        # Channels-first below (numpy broadcasts slowly over a trailing axis of 3).
        # Background: grey texture standardised, given a random contrast, mean luminance and
        # tint: bg = t * A + B, directly in [0, 255] units (+0.5: rounding by truncation).
        t = _crops(grey, sc["bg_idx"][sl], sc["bg_oy"][sl], sc["bg_ox"][sl], sc["bg_f"][sl], size)
        a_bg = 0.18 * q["bg_contrast"] / (t.std(axis=(2, 3), keepdims=True) + 1e-3)
        a_bg = a_bg * q["bg_tint"] * 255
        b_bg = q["bg_lum"] * q["bg_tint"] * 255 - t.mean(axis=(2, 3), keepdims=True) * a_bg + 0.5
        img = t * a_bg + b_bg  # (m, 3, S, S)

        # Object fill: colour photo crop blended with a random colour (weight w), its mean
        # luminance moved to fg_lum and its contrast scaled: fg = ph * A + B.
        ph = _crops(
            colour, sc["fg_idx"][sl], sc["fg_oy"][sl], sc["fg_ox"][sl], sc["fg_f"][sl], size
        )
        w, k, rgb = q["fg_blend"], q["fg_contrast"], q["fg_colour"]
        mu = (1 - w) * _lum(ph.mean(axis=(2, 3), keepdims=True)) + w * _lum(rgb)
        fg = ph * ((1 - w) * k * 255) + (((w * rgb - mu) * k + q["fg_lum"]) * 255 + 0.5)
        if layers:
            bg_out[sl] = _to_uint8(img.copy())
            fg_out[sl] = _to_uint8(fg.copy())
        np.copyto(img, fg, where=mk[:, None])
        data[sl] = _to_uint8(img)
    return data, masks, fg_out, bg_out


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """(m, 3, S, S) float in [0, 255] + 0.5 -> (m, S, S, 3) uint8, rounding half up; in place."""
    np.clip(x, 0, 255.49, out=x)
    return x.astype(np.uint8).transpose(0, 2, 3, 1)


def generate_synthetic_objects(
    n_per_class: int,
    *,
    image_size: int = 32,
    num_classes: int = 10,
    seed: int = 0,
    train: bool = True,
    layers: bool = False,
) -> SyntheticArrays:
    """Generate ``n_per_class * num_classes`` images (balanced classes, shuffled order).

    Deterministic in (n_per_class, num_classes, seed, train, image_size); the scene parameters
    do not depend on ``image_size`` (the 32 and 64 px sets show the same scenes).  ``layers``
    also returns the foreground and background layers.  Returns a :class:`SyntheticArrays`:
    data (N, H, W, 3) uint8, targets (N,), masks (N, H, W) bool, boxes (N, 4), ..."""
    _check_args(n_per_class, image_size, num_classes, seed)
    # Train and test: two independent streams of the same seed.
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0 if train else 1,)))
    grey, colour = texture_sources()
    sc = _draw_scenes(rng, n_per_class, num_classes, len(grey), len(colour))
    data, masks, fg, bg = _render(sc, image_size, layers)
    n, size = len(data), image_size
    boxes = np.zeros((n, 4), dtype=np.int64)
    any_r, any_c = masks.any(axis=2), masks.any(axis=1)
    boxes[:, 0] = any_r.argmax(1)
    boxes[:, 1] = any_c.argmax(1)
    boxes[:, 2] = size - any_r[:, ::-1].argmax(1)
    boxes[:, 3] = size - any_c[:, ::-1].argmax(1)
    return SyntheticArrays(
        data=data,
        targets=sc["targets"].astype(np.int64),
        masks=masks,
        boxes=boxes,
        scales=sc["scale"],
        aspects=sc["aspect"],
        angles=sc["angle"],
        classes=CLASSES[:num_classes],
        foreground=fg,
        background=bg,
    )


class SyntheticObjects(Dataset):
    """``synthetic-objects`` as a torchvision-style data set (see the module docstring).

    ``dataset[i]`` -> (PIL RGB image, int label), or (image, label, mask) with ``return_mask``:
    the mask is a ``torchvision.tv_tensors.Mask`` (H, W) bool and ``transform`` is then called as
    ``transform(image, mask)`` so that a ``torchvision.transforms.v2`` pipeline moves both
    consistently (photometric transforms touch the image only).

    Attributes: data uint8 (N, H, W, 3); targets list[int]; masks bool (N, H, W);
    boxes int64 (N, 4) (y0, x0, y1, x1); classes; class_to_idx.

    Default sizes: 500 train / 100 test images per class (CIFAR-10's ratio at a tenth of the
    size); image_size 32 (CIFAR stand-in) or 64 (Tiny-ImageNet stand-in).
    """

    name = NAME

    def __init__(
        self,
        train: bool = True,
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        *,
        image_size: int = 32,
        n_per_class: int | None = None,
        num_classes: int = 10,
        seed: int = 0,
        return_mask: bool = False,
    ) -> None:
        if n_per_class is None:
            n_per_class = 500 if train else 100
        arrays = generate_synthetic_objects(
            n_per_class, image_size=image_size, num_classes=num_classes, seed=seed, train=train
        )
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self.return_mask = return_mask
        self.image_size = image_size
        self.seed = seed
        self.data = arrays.data
        self.targets: list[int] = arrays.targets.tolist()
        self.masks = arrays.masks
        self.boxes = arrays.boxes
        self.scales = arrays.scales
        self.aspects = arrays.aspects
        self.angles = arrays.angles
        self.classes = list(arrays.classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        img: Any = Image.fromarray(self.data[index])
        target: Any = self.targets[index]
        if self.target_transform is not None:
            target = self.target_transform(target)
        if not self.return_mask:
            if self.transform is not None:
                img = self.transform(img)
            return img, target
        from torchvision import tv_tensors

        mask: Any = tv_tensors.Mask(torch.from_numpy(self.masks[index].copy()))
        if self.transform is not None:
            img, mask = self.transform(img, mask)
        return img, target, mask

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return (
            f"SyntheticObjects(name={NAME!r}, split={split}, n={len(self)}, "
            f"image_size={self.image_size}, classes={len(self.classes)}, seed={self.seed})"
        )
