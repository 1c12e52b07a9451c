"""The ingredients of ``synthetic-objects`` (:mod:`puzzle_core.data.synthetic`): the class
silhouettes (one bool template per class, the horse is scikit-image's real silhouette) and the
texture sources (scikit-image's bundled grey photographs for backgrounds, colour photographs for
object fills)."""

from __future__ import annotations

import functools

import numpy as np
import torch

CLASSES: tuple[str, ...] = (
    "disk",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "crescent",
    "horse",
    "arrow",
    "tee",
    "heart",
    "ell",
)
# Grey photographs for backgrounds, colour photographs for object fills (scikit-image's wheel).
BACKGROUND_PHOTOS: tuple[str, ...] = (
    "brick",
    "grass",
    "gravel",
    "moon",
    "camera",
    "coins",
    "text",
    "cell",
    "clock",
    "page",
)
OBJECT_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "colorwheel",
    "retina",
    "cat",
)

TEMPLATE_SIDE = 256  # side of the silhouette templates, pixels
SOURCE_SIDE = 256  # side of the texture sources, pixels


# --------------------------------------------------------------------------------------------
# Silhouette templates
# --------------------------------------------------------------------------------------------
def _polygon(u: np.ndarray, v: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd point-in-polygon test; u, v (T, T) in template coordinates (y up)."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(pts)
    for k in range(n):
        (x1, y1), (x2, y2) = pts[k], pts[(k + 1) % n]
        crosses = (y1 > v) != (y2 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < xint)
    return inside


def _horse(res: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    h = ~data.horse()  # the bundled silhouette is False on the horse
    rows, cols = np.nonzero(h)
    h = h[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(h.shape)
    sq = np.zeros((side, side), dtype=bool)
    r0, c0 = (side - h.shape[0]) // 2, (side - h.shape[1]) // 2
    sq[r0 : r0 + h.shape[0], c0 : c0 + h.shape[1]] = h
    inner = round(res * 0.95)
    small = resize(sq.astype(np.float32), (inner, inner), order=1, anti_aliasing=True) > 0.5
    out = np.zeros((res, res), dtype=bool)
    o = (res - inner) // 2
    out[o : o + inner, o : o + inner] = small
    return out


@functools.lru_cache(maxsize=1)
def silhouette_templates(resolution: int = TEMPLATE_SIDE) -> np.ndarray:
    """The class silhouettes as bool (len(CLASSES), T, T) on the square [-1, 1]^2 (row 0 = top)."""
    t = (np.arange(resolution) + 0.5) / resolution * 2 - 1
    u, v = np.meshgrid(t, -t)  # u right, v up
    r = np.hypot(u, v)
    star = [
        (
            (0.95 if k % 2 == 0 else 0.4) * np.sin(k * np.pi / 5),
            (0.95 if k % 2 == 0 else 0.4) * np.cos(k * np.pi / 5) - 0.05,
        )
        for k in range(10)
    ]
    hu, hv = u * 1.25, v * 1.25 + 0.15  # heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0
    shapes = {
        "disk": r <= 0.9,
        "square": np.maximum(np.abs(u), np.abs(v)) <= 0.75,
        "triangle": _polygon(u, v, [(0.0, 0.92), (-0.92, -0.72), (0.92, -0.72)]),
        "star": _polygon(u, v, star),
        "cross": ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.92))
        | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.92)),
        "ring": (r <= 0.93) & (r >= 0.55),
        "crescent": (r <= 0.93) & (np.hypot(u - 0.45, v) > 0.72),
        "horse": _horse(resolution),
        "arrow": _polygon(
            u,
            v,
            [(-0.92, 0.25), (0.15, 0.25), (0.15, 0.7), (0.95, 0.0), (0.15, -0.7), (0.15, -0.25)]
            + [(-0.92, -0.25)],
        ),
        "tee": ((v >= 0.42) & (v <= 0.92) & (np.abs(u) <= 0.9))
        | ((np.abs(u) <= 0.25) & (v >= -0.92) & (v <= 0.45)),
        "heart": (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0,
        "ell": ((u >= -0.75) & (u <= -0.25) & (np.abs(v) <= 0.92))
        | ((u >= -0.75) & (u <= 0.75) & (v >= -0.92) & (v <= -0.42)),
    }
    return np.stack([shapes[c] for c in CLASSES])


# --------------------------------------------------------------------------------------------
# Texture sources
# --------------------------------------------------------------------------------------------
def _square(img: np.ndarray, side: int) -> np.ndarray:
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    out = resize(img.astype(np.float32) / 255.0, (side, side), order=1, anti_aliasing=True)
    return out.astype(np.float32)


@functools.lru_cache(maxsize=1)
def texture_sources(side: int = SOURCE_SIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """(grey (len(BACKGROUND_PHOTOS), 1, S, S), colour (len(OBJECT_PHOTOS), 3, S, S)) float32 in
    [0, 1]: centre squares of scikit-image's bundled photographs resized to ``side``."""
    from skimage import data

    grey = []
    for name in BACKGROUND_PHOTOS:
        img = getattr(data, name)()
        if img.ndim == 3:
            img = img[..., :3].mean(-1)
        grey.append(_square(img, side))
    colour = []
    for name in OBJECT_PHOTOS:
        img = getattr(data, name)()
        colour.append(_square(img[..., :3], side))
    grey_t = torch.from_numpy(np.stack(grey)[:, None])
    colour_t = torch.from_numpy(np.stack(colour)).permute(0, 3, 1, 2).contiguous()
    return grey_t, colour_t
