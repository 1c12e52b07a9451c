"""ImageNet (ILSVRC-2012) from the standard ImageFolder layout ``root/train/<wnid>/*.JPEG`` and
``root/val/<wnid>/*.JPEG`` (the validation images sorted into class folders, e.g. with the usual
``valprep.sh``), with the reference transforms of Table 5 [docs/reference-implementation.md §1c].
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SPLITS = ("train", "val")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def imagenet_train_transform(size: int = 224, scale: tuple[float, float] = (0.08, 1.0)) -> Any:
    """RandomResizedCrop(size, scale), RandomHorizontalFlip, ToTensor, Normalize:
    PIL RGB -> float tensor (3, size, size).  Table 5 uses scale (0.08, 1) at 128 px (phase 1)
    and (0.087, 1) at 224 px (phases 2-3)."""
    from torchvision import transforms as T

    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale must satisfy 0 < scale[0] <= scale[1] <= 1, got {scale!r}")
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=scale),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )


def imagenet_test_transform(resize: int = 256, size: int = 224) -> Any:
    """Resize(256), CenterCrop(224), ToTensor, Normalize (reference test transform):
    PIL RGB -> float tensor (3, 224, 224)."""
    from torchvision import transforms as T

    if not (isinstance(size, int) and isinstance(resize, int) and 1 <= size <= resize):
        raise ValueError(f"need integers 1 <= size <= resize, got size={size!r}, resize={resize!r}")
    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])


def load_imagenet(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
    check_classes: bool = True,
) -> Any:
    """``torchvision.datasets.ImageFolder(root/split)``: items (PIL RGB, int label), classes =
    the sorted wnid folder names.  ``check_classes`` verifies that ``val`` has the same class
    folders as ``train`` (when both exist), so that labels agree across splits."""
    from torchvision.datasets import ImageFolder

    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    root = Path(root).expanduser()
    directory = root / split
    if not directory.is_dir():
        raise FileNotFoundError(
            f"ImageNet {split} split not found: expected {directory}/<wnid>/*.JPEG "
            f"(ImageFolder layout; sort the validation images into class folders first)"
        )
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
    if not classes:
        loose = sum(1 for p in directory.iterdir() if p.is_file())
        raise FileNotFoundError(
            f"{directory} has no class folders ({loose} loose files): ImageNet needs "
            f"{directory}/<wnid>/*.JPEG; sort the validation images into class folders first"
        )
    if check_classes:
        other = root / ("val" if split == "train" else "train")
        if other.is_dir():
            other_classes = sorted(p.name for p in other.iterdir() if p.is_dir())
            if other_classes and other_classes != classes:
                diff = sorted(set(classes) ^ set(other_classes))[:5]
                raise ValueError(
                    f"{root}: train and val class folders differ (e.g. {diff}); labels would "
                    f"disagree between the splits"
                )
    return ImageFolder(str(directory), transform=transform, target_transform=target_transform)
