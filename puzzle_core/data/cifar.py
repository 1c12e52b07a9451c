"""CIFAR-100 (the paper's data set) and CIFAR-10 through ``torchvision.datasets`` from a data root,
with the reference code's normalisation constants and transforms.

Offline: the root must already hold the extracted python version (``cifar-100-python/`` or
``cifar-10-batches-py/``), or its archive (``cifar-100-python.tar.gz`` / ``cifar-10-python.tar.gz``,
extracted here after an md5 check); otherwise the loader fails and says where to put the files.
Online: ``download=True`` fetches the archive into the root (torchvision).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

NAMES = ("cifar100", "cifar10")
# Reference train/test normalisation [PuzzleMix:main.py; docs/reference-implementation.md §1c].
CIFAR100_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
CIFAR100_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)
CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
NUM_CLASSES = {"cifar100": 100, "cifar10": 10}
_URLS = {
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}


def _check_name(name: str) -> str:
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in NAMES:
        raise ValueError(f"name must be one of {list(NAMES)}, got {name!r}")
    return key


def cifar_normalization(name: str = "cifar100") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per RGB channel on [0, 1] pixels, as in the reference code."""
    key = _check_name(name)
    if key == "cifar100":
        return CIFAR100_MEAN, CIFAR100_STD
    return CIFAR10_MEAN, CIFAR10_STD


def cifar_train_transform(name: str = "cifar100", padding: int = 2) -> Any:
    """RandomHorizontalFlip, RandomCrop(32, padding=2), ToTensor, Normalize
    (docs/reference-implementation.md §1c): PIL 32x32 RGB -> float tensor (3, 32, 32)."""
    from torchvision import transforms as T

    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    mean, std = cifar_normalization(name)
    return T.Compose(
        [
            T.RandomHorizontalFlip(),
            T.RandomCrop(32, padding=padding),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def cifar_test_transform(name: str = "cifar100") -> Any:
    """ToTensor, Normalize: PIL 32x32 RGB -> float tensor (3, 32, 32)."""
    from torchvision import transforms as T

    mean, std = cifar_normalization(name)
    return T.Compose([T.ToTensor(), T.Normalize(mean, std)])


def _dataset_class(key: str) -> Any:
    from torchvision import datasets

    return datasets.CIFAR100 if key == "cifar100" else datasets.CIFAR10


def _where_message(key: str, root: Path) -> str:
    cls = _dataset_class(key)
    return (
        f"put the extracted folder {cls.base_folder}/ (from {cls.filename}, {_URLS[key]}) or the "
        f"archive {cls.filename} itself in root={str(root)!r}, i.e. {root / cls.base_folder}, or "
        f"pass download=True on a machine with network access"
    )


def load_cifar(
    name: str = "cifar100",
    root: str | Path | None = None,
    train: bool = True,
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
    download: bool = False,
) -> Any:
    """``torchvision.datasets.CIFAR100`` / ``CIFAR10`` from ``root``: items (PIL 32x32 RGB, int
    label); ``.data`` uint8 (N, 32, 32, 3), ``.targets`` list of N ints (N = 50,000 train,
    10,000 test).  Raises FileNotFoundError naming the expected path when the files are absent
    (offline) or cannot be downloaded."""
    key = _check_name(name)
    if root is None:
        raise ValueError("root is required: the directory that holds (or will hold) the data")
    root = Path(root).expanduser()
    cls = _dataset_class(key)
    if not download:
        folder = root / cls.base_folder
        archive = root / cls.filename
        if not folder.is_dir() and archive.is_file():
            from torchvision.datasets.utils import check_integrity, extract_archive

            if not check_integrity(str(archive), cls.tgz_md5):
                raise FileNotFoundError(f"{archive} is corrupted (md5 mismatch); replace it")
            extract_archive(str(archive), str(root))
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{cls.__name__} not found: {folder} does not exist; {_where_message(key, root)}"
            )
    try:
        return cls(
            str(root),
            train=train,
            transform=transform,
            target_transform=target_transform,
            download=download,
        )
    except RuntimeError as exc:  # torchvision: "not found or corrupted"
        raise FileNotFoundError(
            f"{cls.__name__} under {root / cls.base_folder} is incomplete or corrupted "
            f"(torchvision: {exc}); {_where_message(key, root)}"
        ) from exc
    except OSError as exc:  # URLError, socket errors, ...: offline download
        raise FileNotFoundError(
            f"could not download {cls.__name__} ({type(exc).__name__}: {exc}); "
            f"{_where_message(key, root)}"
        ) from exc
