"""Tiny-ImageNet-200 from its zip / folder layout, with the validation-folder re-organisation
used by Puzzle Mix, Co-Mixup and GuidedMixup (``load_data.py create_val_folder``).

Layout [docs/baselines.md §9.2]: ``tiny-imagenet-200/wnids.txt``, ``words.txt``,
``train/<wnid>/images/<wnid>_<k>.JPEG`` (500 per class) and ``train/<wnid>/<wnid>_boxes.txt``,
``val/images/val_<k>.JPEG`` (10,000) with ``val/val_annotations.txt`` (tab-separated: file, wnid,
box), ``test/images/`` (unlabelled, unused).  The re-organisation moves every
``val/images/<file>`` to ``val/images/<wnid>/<file>``; the official val split then serves as the
test set (ImageFolder(``val/images``)), and class indices are the sorted wnids for both splits.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAME = "tiny-imagenet-200"
ARCHIVE = "tiny-imagenet-200.zip"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SPLITS = ("train", "val")
# Reference normalisation and augmentation [docs/reference-implementation.md §1c].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def find_tiny_imagenet(root: str | Path) -> Path:
    """The ``tiny-imagenet-200`` directory: ``root`` itself, ``root/tiny-imagenet-200``, or
    extracted from ``root/tiny-imagenet-200.zip`` (once; later calls reuse the folder)."""
    root = Path(root).expanduser()
    for cand in (root, root / NAME):
        if (cand / "wnids.txt").is_file():
            return cand
    archive = root / ARCHIVE if root.is_dir() else root
    if archive.is_file() and zipfile.is_zipfile(archive):
        dest = archive.parent
        with zipfile.ZipFile(archive) as zf:
            tmp = dest / f".{NAME}.extracting"
            if tmp.exists():
                shutil.rmtree(tmp)
            zf.extractall(tmp)  # extract aside, then rename: no half-extracted folder on failure
            inner = tmp / NAME if (tmp / NAME).is_dir() else tmp
            if not (inner / "wnids.txt").is_file():
                shutil.rmtree(tmp)
                raise FileNotFoundError(f"{archive} holds no {NAME}/wnids.txt")
            inner.rename(dest / NAME)
            if tmp.exists():
                shutil.rmtree(tmp)
        return dest / NAME
    raise FileNotFoundError(
        f"Tiny-ImageNet not found: expected {root / NAME}/wnids.txt (the extracted {ARCHIVE}) "
        f"or {root / ARCHIVE}; download {URL} and put it (or its extracted folder) in "
        f"root={str(root)!r}"
    )


def read_wnids(folder: str | Path) -> list[str]:
    """The 200 WordNet ids of ``wnids.txt``, sorted (= the class order of ImageFolder)."""
    path = Path(folder) / "wnids.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    wnids = sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
    if not wnids:
        raise ValueError(f"{path} lists no wnid")
    return wnids


def reorganize_val(folder: str | Path) -> int:
    """Move ``val/images/<file>`` to ``val/images/<wnid>/<file>`` per ``val_annotations.txt``.

    Idempotent: files already in their class folder are left alone, so a second call (or a call
    after an interrupted one) moves nothing more.  Returns the number of files moved.  Raises
    FileNotFoundError when an annotated file is in neither place and ValueError for an unknown
    wnid or a malformed line."""
    folder = Path(folder)
    ann = folder / "val" / "val_annotations.txt"
    images = folder / "val" / "images"
    if not ann.is_file():
        raise FileNotFoundError(f"{ann} not found (Tiny-ImageNet validation annotations)")
    if not images.is_dir():
        raise FileNotFoundError(f"{images} not found (Tiny-ImageNet validation images)")
    wnids = set(read_wnids(folder))
    moved = 0
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{ann}:{lineno}: expected '<file>\\t<wnid>\\t...', got {line!r}")
        fname, wnid = parts[0].strip(), parts[1].strip()
        if wnid not in wnids:
            raise ValueError(f"{ann}:{lineno}: wnid {wnid!r} is not in wnids.txt")
        src, dst = images / fname, images / wnid / fname
        if dst.is_file():
            if src.is_file():  # a stray copy next to the moved one
                src.unlink()
            continue
        if not src.is_file():
            raise FileNotFoundError(f"{src} (annotated in {ann}:{lineno}) not found")
        dst.parent.mkdir(exist_ok=True)
        src.replace(dst)
        moved += 1
    return moved


def tiny_imagenet_train_transform() -> Any:
    """RandomHorizontalFlip, RandomCrop(64, padding=4), ToTensor, Normalize(0.5, 0.5):
    PIL 64x64 RGB -> float tensor (3, 64, 64)."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.RandomHorizontalFlip(),
            T.RandomCrop(64, padding=4),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )


def tiny_imagenet_test_transform() -> Any:
    """ToTensor, Normalize(0.5, 0.5): PIL 64x64 RGB -> float tensor (3, 64, 64)."""
    from torchvision import transforms as T

    return T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])


def load_tiny_imagenet(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
    reorganize: bool = True,
) -> Any:
    """``torchvision.datasets.ImageFolder`` over ``train/`` or (re-organised) ``val/images/``:
    items (PIL 64x64 RGB, greyscale files converted; int label in [0, 200)).  Class indices are
    the sorted wnids of ``wnids.txt`` for both splits (checked).  ``reorganize`` runs
    :func:`reorganize_val` first (idempotent; it moves files inside ``val/images``)."""
    from torchvision.datasets import ImageFolder

    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    folder = find_tiny_imagenet(root)
    wnids = read_wnids(folder)
    if split == "train":
        directory = folder / "train"
    else:
        if reorganize:
            reorganize_val(folder)
        directory = folder / "val" / "images"
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} not found (Tiny-ImageNet {split} split)")
    loose = [p.name for p in directory.iterdir() if p.is_file()]
    if loose:
        raise ValueError(
            f"{directory} still holds {len(loose)} loose files (e.g. {loose[0]}): run "
            f"reorganize_val({str(folder)!r}) or pass reorganize=True"
        )
    ds = ImageFolder(str(directory), transform=transform, target_transform=target_transform)
    expected = {w: i for i, w in enumerate(wnids)}
    if ds.class_to_idx != expected:
        extra = sorted(set(ds.class_to_idx) ^ set(expected))[:5]
        raise ValueError(
            f"{directory}: class folders do not match wnids.txt (differences: {extra}); "
            f"train and {split} labels would disagree"
        )
    return ds
