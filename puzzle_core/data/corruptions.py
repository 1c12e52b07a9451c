"""CIFAR-100-C (Hendrycks & Dietterich 2019): the published ``.npy`` release, and a local
stand-in generated with the ``imagecorruptions`` library when the release cannot be downloaded.

Published layout [hendrycks/robustness; docs/baselines.md §9.1]: 19 files ``<corruption>.npy``, each
uint8 (50000, 32, 32, 3) HWC RGB = 5 severities x 10,000 test images, severity-major (rows
10000 (s-1) ... 10000 s - 1 are severity s, in test-set order), plus ``labels.npy`` (50000,) =
the test labels repeated 5 times.  Zenodo record 3555552 (CIFAR-10-C: 2535967).

Generated stand-in (:func:`generate_corruptions`), written in the same layout so that
:class:`CIFARCorrupted` reads either.  ``imagecorruptions`` 1.1.2 implements all 19 types, but:

* with numpy 2 / scikit-image >= 0.19 three fail as shipped: ``glass_blur`` and ``gaussian_blur``
  (they pass ``multichannel=True`` to ``skimage.filters.gaussian``, a keyword removed from
  scikit-image) and ``fog`` (``np.float_``, removed in numpy 2).  The other 16 run unchanged.
  With ``compat=True`` (default) the three run through the library's own code with the two
  renamings (``channel_axis=-1``; ``float64``) applied to the library module's namespace for
  the duration of the call, so all 19 are produced; :func:`library_status` probes this at run
  time.
* ``impulse_noise`` draws from an unseeded generator inside scikit-image; here it is handed a
  seeded one (same contained mechanism), the other types use numpy's global generator, which is
  seeded per (corruption, severity) and restored afterwards.  The result is deterministic in
  (images, seed).

How the stand-in differs from the published CIFAR-100-C:

* severities: the library's are the ImageNet-C parameters, much stronger than the CIFAR-C ones
  (e.g. gaussian noise sigma .08-.38 vs .04-.10, JPEG quality 25-7 vs 80-40, contrast .4-.05 vs
  .75-.15; the table in docs/baselines.md §9.1), so accuracies are lower than on the release;
* implementations: motion blur uses a numpy/OpenCV kernel (the release: ImageMagick), glass blur
  shifts pixels by up to 4 px (written for 224 px; the CIFAR script by 1 px), elastic transform
  and pixelate use the ImageNet-C forms, frost crops the library's textures (the CIFAR script
  downsizes them by 0.2 first), fog's plasma fractal is 32 px in both;
* randomness: the release has no seed (not reproducible); the stand-in is seeded;
* the images are whatever test set is passed in (CIFAR-100 test order for a faithful stand-in).

Generation cost on these 2-core CPUs at 32x32: ~0.2-3 ms per image for most types, frost ~8 ms
(it reads its texture file per call), glass blur ~10 ms (python loops); all 19 types x 5
severities x 10,000 images is roughly half an hour.  ``out_dir`` makes it resumable per type.
"""

from __future__ import annotations

import contextlib
import functools
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

# The 19 files of CIFAR-10/100-C [hendrycks/robustness README; docs/baselines.md §9.1].
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "gaussian_blur",
    "snow",
    "frost",
    "fog",
    "spatter",
    "brightness",
    "contrast",
    "saturate",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
# The 15 "standard" corruptions (AugMix / ImageNet-C benchmark); PM and GM average all 19.
STANDARD: tuple[str, ...] = tuple(
    c for c in CORRUPTIONS if c not in ("speckle_noise", "gaussian_blur", "spatter", "saturate")
)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
# imagecorruptions 1.1.2 with numpy 2 / scikit-image 0.26 (found by running them).
LIBRARY_BROKEN: dict[str, str] = {
    "glass_blur": "skimage.filters.gaussian() no longer accepts multichannel=True",
    "gaussian_blur": "skimage.filters.gaussian() no longer accepts multichannel=True",
    "fog": "np.float_ was removed in numpy 2.0",
}
LIBRARY_WORKING: tuple[str, ...] = tuple(c for c in CORRUPTIONS if c not in LIBRARY_BROKEN)
LIBRARY_REQUIREMENT = "imagecorruptions==1.1.2 (and setuptools<81: it imports pkg_resources)"


# --------------------------------------------------------------------------------------------
# Loading the .npy layout
# --------------------------------------------------------------------------------------------
def _check_corruption(corruption: str) -> None:
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {list(CORRUPTIONS)}, got {corruption!r}")


def _check_severity(severity: int | None) -> None:
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(
            f"severity must be None (all five) or one of {SEVERITIES}, got {severity!r}"
        )


def available_corruptions(root: str | Path) -> list[str]:
    """The corruptions with a ``<name>.npy`` file in ``root``, in :data:`CORRUPTIONS` order."""
    root = Path(root)
    return [c for c in CORRUPTIONS if (root / f"{c}.npy").is_file()]


def load_corruption(
    root: str | Path, corruption: str, severity: int | None = None, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (M, H, W, 3), labels int64 (M,)) of one corruption: M = 5 N for
    ``severity=None`` (severity-major), N for one severity.  ``mmap`` maps the file instead of
    reading it (the published files are 150 MB each)."""
    _check_corruption(corruption)
    _check_severity(severity)
    root = Path(root)
    path, lab_path = root / f"{corruption}.npy", root / "labels.npy"
    for p in (path, lab_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} not found: CIFAR-100-C needs <root>/<corruption>.npy and <root>/labels.npy "
                f"(Zenodo record 3555552, CIFAR-100-C.tar), or generate a stand-in with "
                f"generate_corruptions(..., out_dir=root)"
            )
    images = np.load(path, mmap_mode="r" if mmap else None)
    labels = np.load(lab_path)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{path}: expected uint8 (5 N, H, W, 3), got {images.dtype} {images.shape}"
        )
    if images.shape[0] % len(SEVERITIES) or labels.shape != (images.shape[0],):
        raise ValueError(
            f"{path} has {images.shape[0]} rows and {lab_path} has shape {labels.shape}: "
            f"expected 5 N rows (5 severities x N test images) and labels of shape (5 N,)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{lab_path}: labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if severity is not None:
        n = images.shape[0] // len(SEVERITIES)
        rows = slice((severity - 1) * n, severity * n)
        images, labels = images[rows], labels[rows]
    return images, labels


class CIFARCorrupted(Dataset):
    """One corruption of CIFAR-100-C (or CIFAR-10-C, or a generated stand-in) as a data set.

    ``dataset[i]`` -> (PIL 32x32 RGB, int label).  ``severity`` None = all five severities
    (severity-major, 5 N items), else one severity (N items).
    Attributes: data uint8 (M, H, W, 3) (memory-mapped); targets list[int]; corruption; severity.
    """

    def __init__(
        self,
        root: str | Path,
        corruption: str,
        severity: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        mmap: bool = True,
    ) -> None:
        self.data, labels = load_corruption(root, corruption, severity, mmap)
        self.targets: list[int] = labels.tolist()
        self.root = Path(root)
        self.corruption = corruption
        self.severity = severity
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img: Any = Image.fromarray(np.asarray(self.data[index]))
        target: Any = self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __repr__(self) -> str:
        return (
            f"CIFARCorrupted(corruption={self.corruption!r}, severity={self.severity}, "
            f"n={len(self)})"
        )


# --------------------------------------------------------------------------------------------
# Generating a stand-in with imagecorruptions
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _library() -> types.ModuleType:
    """``imagecorruptions.corruptions`` (imported quietly: it warns about pkg_resources and
    scipy.ndimage.interpolation)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import imagecorruptions  # noqa: F401
            from imagecorruptions import corruptions as mod
    except ImportError as exc:
        raise ImportError(
            f"generating corruptions needs {LIBRARY_REQUIREMENT}: "
            f"pip install imagecorruptions==1.1.2 'setuptools<81' ({exc})"
        ) from exc
    return mod


def _gaussian_compat(image: Any, sigma: float = 1.0, multichannel: bool | None = None, **kw: Any):
    """``skimage.filters.gaussian`` accepting the removed ``multichannel`` keyword."""
    from skimage.filters import gaussian

    if multichannel:
        kw.setdefault("channel_axis", -1)
    return gaussian(image, sigma=sigma, **kw)


class _NumpyCompat(types.ModuleType):
    """numpy with ``float_`` (removed in numpy 2) restored, for the library's module only."""

    float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


class _SkimageSeeded(types.ModuleType):
    """scikit-image whose ``util.random_noise`` draws from a given generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        import skimage
        import skimage.util

        super().__init__("skimage")
        self._skimage = skimage
        self.util = types.SimpleNamespace(
            random_noise=functools.partial(skimage.util.random_noise, rng=rng)
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._skimage, name)


@contextlib.contextmanager
def _patched(mod: types.ModuleType, **names: Any) -> Iterator[None]:
    old = {k: getattr(mod, k) for k in names}
    for k, v in names.items():
        setattr(mod, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(mod, k, v)


@contextlib.contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _stream_seed(seed: int, corruption: str, severity: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(CORRUPTIONS.index(corruption), severity))


def corrupt_images(
    images: np.ndarray, corruption: str, severity: int, seed: int = 0, compat: bool = True
) -> np.ndarray:
    """Apply one ``imagecorruptions`` corruption at one severity (ImageNet-C parameters) to
    images uint8 (N, H, W, 3), H, W >= 32 (the library's minimum).  Returns uint8 (N, H, W, 3),
    deterministic in (images, corruption, severity, seed)."""
    _check_corruption(corruption)
    _check_severity(severity)
    if severity is None:
        raise ValueError("severity must be one of (1, 2, 3, 4, 5), got None")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if min(images.shape[1:3]) < 32:
        raise ValueError(
            f"images must be at least 32x32 for imagecorruptions, got {images.shape[1:3]}"
            " (pad smaller images, e.g. Fashion-MNIST 28 -> 32, first)"
        )
    lib = _library()
    patches: dict[str, Any] = {}
    if compat and corruption in ("glass_blur", "gaussian_blur"):
        patches["gaussian"] = _gaussian_compat
    if compat and corruption == "fog":
        patches["np"] = _NumpyCompat("numpy")
    ss = _stream_seed(seed, corruption, severity)
    global_seed, sk_seed = ss.spawn(2)
    if corruption == "impulse_noise":
        patches["sk"] = _SkimageSeeded(np.random.default_rng(sk_seed))
    fn = getattr(lib, corruption)
    out = np.empty_like(images)
    with _patched(lib, **patches), _seeded_global_numpy(int(global_seed.generate_state(1)[0])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, img in enumerate(images):
                # As imagecorruptions.corrupt: PIL input, then np.uint8 of the float result.
                try:
                    res = np.asarray(fn(Image.fromarray(img), severity))
                except Exception as exc:
                    if compat or corruption not in LIBRARY_BROKEN:
                        raise
                    raise RuntimeError(
                        f"corruption {corruption!r} fails in imagecorruptions with numpy 2 / "
                        f"recent scikit-image ({LIBRARY_BROKEN[corruption]}); pass compat=True"
                    ) from exc
                out[i] = np.uint8(np.clip(res, 0, 255)) if res.dtype != np.uint8 else res
    return out


@functools.lru_cache(maxsize=2)
def library_status(compat: bool = True) -> dict[str, str]:
    """Per corruption, ``"ok"`` or the error raised here, probed at run time on a 32x32 image at
    every severity; ``compat=False`` probes the library exactly as shipped."""
    _library()
    probe = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    status: dict[str, str] = {}
    for c in CORRUPTIONS:
        try:
            for s in SEVERITIES:
                corrupt_images(probe, c, s, compat=compat)
            status[c] = "ok"
        except Exception as exc:  # report, do not hide: the caller decides
            status[c] = f"{type(exc).__name__}: {exc}"
    return status


def generate_corruptions(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    out_dir: str | Path | None = None,
    compat: bool = True,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """A CIFAR-C-style set from a test set: images uint8 (N, H, W, 3) (H, W >= 32), labels (N,).

    Returns {corruption: uint8 (len(severities) N, H, W, 3)}, severity-major as the release
    (with all five severities the layout is the published one).  ``corruptions`` None = all 19
    (with ``compat``; else the 16 that the library runs unchanged).  With ``out_dir``, writes
    ``<corruption>.npy`` and ``labels.npy`` (uint8 when the labels fit, as published) and
    reuses files already there (resumable; they are loaded, not regenerated)."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(images)},), got {labels.shape}")
    if corruptions is None:
        corruptions = CORRUPTIONS if compat else LIBRARY_WORKING
    for c in corruptions:
        _check_corruption(c)
    severities = tuple(severities)
    if not severities or any(s not in SEVERITIES for s in severities):
        raise ValueError(f"severities must be a non-empty subset of {SEVERITIES}, got {severities}")
    rep_labels = np.tile(labels, len(severities))
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
        lab_dtype = np.uint8 if labels.min() >= 0 and labels.max() < 256 else np.int64
        np.save(out_path / "labels.npy", rep_labels.astype(lab_dtype))
    result: dict[str, np.ndarray] = {}
    iterator: Any = corruptions
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(corruptions, desc="corruptions")
    for c in iterator:
        target = out_path / f"{c}.npy" if out_path is not None else None
        if target is not None and target.is_file():
            arr = np.load(target)
            if arr.shape == (len(severities) * len(images), *images.shape[1:]):
                result[c] = arr
                continue
        arr = np.concatenate(
            [corrupt_images(images, c, s, seed=seed, compat=compat) for s in severities]
        )
        if target is not None:
            tmp = target.with_suffix(".tmp.npy")
            np.save(tmp, arr)
            tmp.replace(target)
        result[c] = arr
    return result
