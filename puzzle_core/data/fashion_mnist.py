"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 60,000 train / 10,000 test 28x28 grey images in 10
balanced classes.  The real data set these machines can have without network access: Debian's
package ``dataset-fashion-mnist`` installs the four original idx files.

Where the files are looked for, in order:

1. ``root`` (if given): ``root/``, ``root/FashionMNIST/raw/`` (torchvision's layout) or
   ``root/fashion-mnist/``, as ``<name>`` or ``<name>.gz``;
2. the Debian package's directory, found at run time with ``dpkg -L dataset-fashion-mnist``;
3. ``torchvision.datasets.FashionMNIST(root, download=download)`` (needs ``root``; downloads
   only with ``download=True`` and network access).

Nothing else is ever substituted: when all three fail the error says how to get the files.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

NAME = "fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Pixel statistics of the 60,000 training images on [0, 1] (computed from the idx files).
MEAN = (0.2860406,)
STD = (0.3530242,)
# md5 of the *decompressed* idx files (Debian's gzip files are recompressed, so their own md5
# differs from the upstream .gz checksums; the contents are the data set).
CONTENT_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        return fh.read()


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an idx file (``.gz`` or plain; LeCun's MNIST format: 2 zero bytes, a type code, the
    number of dimensions, big-endian int32 sizes, then the data).  Returns the array in its
    stored dtype, e.g. uint8 (N, 28, 28) for images and (N,) for labels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file not found: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(
            f"{path}: header says shape {shape} ({count * dtype.itemsize} bytes) but the file "
            f"holds {len(raw) - offset} data bytes"
        )
    return np.frombuffer(raw, dtype, count=count, offset=offset).reshape(shape).copy()


@functools.lru_cache(maxsize=1)
def debian_dir() -> Path | None:
    """The directory where ``dataset-fashion-mnist`` put the idx files, asked from dpkg at run
    time; None when dpkg or the package is absent."""
    dpkg = shutil.which("dpkg-query") or shutil.which("dpkg")
    if dpkg is None:
        return None
    try:
        out = subprocess.run(
            [dpkg, "-L", DEBIAN_PACKAGE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    for line in out.stdout.splitlines():
        p = Path(line.strip())
        if p.name.startswith(FILES[True][0]) and p.is_file():
            return p.parent
    return None


def _find_file(directory: Path, name: str) -> Path | None:
    for cand in (directory / name, directory / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def find_fashion_mnist(root: str | Path | None = None) -> Path | None:
    """The first directory holding all four idx files: under ``root`` (``root``,
    ``root/FashionMNIST/raw``, ``root/fashion-mnist``), else the Debian package's; else None."""
    dirs: list[Path] = []
    if root is not None:
        r = Path(root).expanduser()
        dirs += [r, r / "FashionMNIST" / "raw", r / "fashion-mnist"]
    deb = debian_dir()
    if deb is not None:
        dirs.append(deb)
    names = FILES[True] + FILES[False]
    for d in dirs:
        if all(_find_file(d, name) is not None for name in names):
            return d
    return None


def _missing_message(root: str | Path | None, extra: str = "") -> str:
    where = f"under root={str(root)!r} " if root is not None else ""
    return (
        f"Fashion-MNIST not found {where}and the Debian package {DEBIAN_PACKAGE!r} is not "
        f"installed. Get it with `apt-get install {DEBIAN_PACKAGE}` (Debian/Ubuntu, offline "
        f"mirrors included), or put train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally .gz) in a directory and "
        f"pass it as root, or pass root=<dir> with download=True on a machine with network "
        f"access (torchvision).{extra}"
    )


def load_fashion_mnist_arrays(
    root: str | Path | None = None,
    train: bool = True,
    download: bool = False,
    verify: bool = False,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(images uint8 (N, 28, 28), labels int64 (N,), source) for the train (N = 60,000) or test
    (N = 10,000) split; ``source`` says where they came from.  ``verify`` checks the md5 of the
    decompressed files against :data:`CONTENT_MD5`."""
    if not isinstance(train, bool):
        raise ValueError(f"train must be a bool, got {train!r}")
    directory = find_fashion_mnist(root)
    if directory is not None:
        img_path = _find_file(directory, FILES[train][0])
        lab_path = _find_file(directory, FILES[train][1])
        assert img_path is not None and lab_path is not None
        if verify:
            for path, name in ((img_path, FILES[train][0]), (lab_path, FILES[train][1])):
                digest = hashlib.md5(_read_bytes(path)).hexdigest()
                if digest != CONTENT_MD5[name]:
                    raise ValueError(f"{path}: content md5 {digest} != {CONTENT_MD5[name]}")
        images, labels = read_idx(img_path), read_idx(lab_path)
        source = f"idx:{directory}"
    else:
        if root is None:
            raise FileNotFoundError(_missing_message(root))
        try:
            from torchvision.datasets import FashionMNIST as _TV

            tv = _TV(str(root), train=train, download=download)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, ...
            raise FileNotFoundError(
                _missing_message(root, f" torchvision said: {type(exc).__name__}: {exc}")
            ) from exc
        images, labels = tv.data.numpy(), tv.targets.numpy()
        source = "torchvision"
    expected = 60000 if train else 10000
    if images.shape != (expected, 28, 28) or labels.shape != (expected,):
        raise ValueError(
            f"Fashion-MNIST {'train' if train else 'test'} files have shapes {images.shape} / "
            f"{labels.shape}, expected ({expected}, 28, 28) / ({expected},)"
        )
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise ValueError(f"Fashion-MNIST labels outside [0, {len(CLASSES) - 1}]")
    return images.astype(np.uint8), labels.astype(np.int64), source


class FashionMNIST(Dataset):
    """Fashion-MNIST, as ``torchvision.datasets.FashionMNIST`` (same items, attributes and class
    names) but found offline in Debian's package first (see the module docstring).

    ``dataset[i]`` -> (PIL image, mode "L", 28x28; int label).
    Attributes: data uint8 tensor (N, 28, 28); targets int64 tensor (N,); classes; class_to_idx;
    source (where the files came from).
    """

    name = NAME
    classes = list(CLASSES)

    def __init__(
        self,
        root: str | Path | None = None,
        train: bool = True,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = False,
        verify: bool = False,
    ) -> None:
        images, labels, source = load_fashion_mnist_arrays(root, train, download, verify)
        self.root = root
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self.source = source
        self.data = torch.from_numpy(images)
        self.targets = torch.from_numpy(labels)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img: Any = Image.fromarray(self.data[index].numpy())
        target: Any = int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"FashionMNIST(split={split}, n={len(self)}, source={self.source!r})"


def fashion_mnist_transforms(train: bool, size: int = 28, channels: int = 1) -> Any:
    """The CIFAR recipe on Fashion-MNIST: train = RandomHorizontalFlip, RandomCrop(size,
    padding=2), ToTensor, Normalize; test = ToTensor, Normalize.  ``size`` 32 zero-pads the
    28x28 images by 2 first (for CIFAR-shaped networks); ``channels`` 3 repeats the grey channel.
    Output: float tensor (channels, size, size)."""
    from torchvision import transforms as T

    if size not in (28, 32):
        raise ValueError(f"size must be 28 or 32, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    ops: list[Any] = []
    if size == 32:
        ops.append(T.Pad(2))
    if channels == 3:
        ops.append(T.Grayscale(num_output_channels=3))
    if train:
        ops += [T.RandomHorizontalFlip(), T.RandomCrop(size, padding=2)]
    ops += [T.ToTensor(), T.Normalize(MEAN * channels, STD * channels)]
    return T.Compose(ops)
