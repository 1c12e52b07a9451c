"""The fine-grained and small-data sets of GuidedMixup (Tables 3, 7 and 8) from their standard
layouts under one data root, and ImageNet-C, with the FGVC transforms of GuidedMixup's code.

Each loader reads the files already on disk (nothing is downloaded) and raises
FileNotFoundError naming the path it expected when they are absent.  Every data set it returns
has ``targets`` (list[int], label of each item, 0-based), ``classes`` and items (PIL RGB image,
int label); torchvision's classes are used where torchvision has one (with ``download=False``).

======================  ================================================================  =====
name                    layout under ``root``                                             K
======================  ================================================================  =====
``cub200``              ``CUB_200_2011/{images.txt, image_class_labels.txt,``             200
                        ``train_test_split.txt, classes.txt, images/<class>/*.jpg}``
``stanford_cars``       torchvision ``StanfordCars``: ``stanford_cars/{devkit/``          196
                        ``{cars_train_annos.mat, cars_meta.mat}, cars_train/,``
                        ``cars_test/, cars_test_annos_withlabels.mat}``
``fgvc_aircraft``       torchvision ``FGVCAircraft`` (variant level): ``fgvc-aircraft-``  100
                        ``2013b/data/{variants.txt, images_variant_{trainval,test}.txt,``
                        ``images/*.jpg}``
``caltech101``          torchvision ``Caltech101``: ``caltech101/101_ObjectCategories/``  101
                        ``<class>/image_<k>.jpg`` (no official split: a seeded stratified
                        80 / 20 split, as GuidedMixup's FGVC code)
``flowers102``          torchvision ``Flowers102``: ``flowers-102/{jpg/, imagelabels.mat,``  102
                        ``setid.mat}`` (train / val / test: 10 / 10 / >= 20 per class)
ImageNet-C              ``<root>/<corruption>/<severity 1-5>/<wnid>/*.JPEG`` (ImageFolder)    1000
======================  ================================================================  =====

Transforms (GuidedMixup's FGVC code, docs/baselines.md §8.6; the paper does not state them):
training Resize(256), RandomCrop(224), RandomHorizontalFlip; test Resize(256), CenterCrop(224);
ImageNet mean / std for both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .imagenet import MEAN, STD

FINE_GRAINED = ("cub200", "stanford_cars", "fgvc_aircraft", "caltech101", "flowers102")
NUM_CLASSES = {
    "cub200": 200,
    "stanford_cars": 196,
    "fgvc_aircraft": 100,
    "caltech101": 101,
    "flowers102": 102,
}
# the folder of each data set under the data root (what ``dataset_present`` looks for)
FOLDERS = {
    "cub200": "CUB_200_2011",
    "stanford_cars": "stanford_cars",
    "fgvc_aircraft": "fgvc-aircraft-2013b",
    "caltech101": "caltech101",
    "flowers102": "flowers-102",
}
# the 15 ImageNet-C corruptions of the benchmark, then the 4 extra ones of the release
IMAGENET_C = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)
SPLITS = ("train", "test")
CALTECH_TEST_FRACTION = 0.2  # GuidedMixup's FGVC README: "train and test as 0.8:0.2, stratified"


def fine_grained_train_transform(size: int = 224, resize: int | None = None) -> Any:
    """Resize(resize), RandomCrop(size), RandomHorizontalFlip, ToTensor, Normalize (ImageNet):
    PIL RGB -> float tensor (3, size, size).  ``resize`` defaults to size * 8 / 7 (256 for
    224)."""
    from torchvision import transforms as T

    resize = _resize_of(size, resize)
    return T.Compose(
        [
            T.Resize(resize),
            T.RandomCrop(size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )


def fine_grained_test_transform(size: int = 224, resize: int | None = None) -> Any:
    """Resize(resize), CenterCrop(size), ToTensor, Normalize (ImageNet): PIL RGB -> float
    tensor (3, size, size)."""
    from torchvision import transforms as T

    resize = _resize_of(size, resize)
    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])


def _resize_of(size: int, resize: int | None) -> int:
    resize = round(size * 8 / 7) if resize is None else resize
    if not (isinstance(size, int) and isinstance(resize, int) and 1 <= size <= resize):
        raise ValueError(f"need integers 1 <= size <= resize, got size={size!r}, resize={resize!r}")
    return resize


def _check_split(split: str, splits: tuple[str, ...] = SPLITS) -> None:
    if split not in splits:
        raise ValueError(f"split must be one of {list(splits)}, got {split!r}")


def _require(paths: list[Path], what: str, hint: str) -> None:
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{what} not found: expected {', '.join(str(p) for p in missing)} ({hint})"
        )


def to_rgb(img: Any) -> Any:
    """PIL image -> RGB (Caltech-101 holds greyscale files)."""
    return img.convert("RGB")


def _with_targets(ds: Any, targets: list[int], classes: list[str] | None = None) -> Any:
    ds.targets = [int(t) for t in targets]
    if classes is not None:
        ds.classes = list(classes)
    return ds


# -- CUB-200-2011 ------------------------------------------------------------------------------


class CUB200:
    """CUB-200-2011 from its release layout (``CUB_200_2011/`` under ``root``, or ``root``
    itself): ``images.txt`` (``<id> <class folder>/<file>``), ``image_class_labels.txt``
    (``<id> <class 1-200>``), ``train_test_split.txt`` (``<id> <1 train | 0 test>``),
    ``classes.txt`` (``<class> <name>``, optional) and ``images/``.  The official split: 5,994
    training and 5,794 test images.  Items: (PIL RGB, label in [0, 200))."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        _check_split(split)
        root = Path(root).expanduser()
        folder = root if (root / "images.txt").is_file() else root / FOLDERS["cub200"]
        names = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "images")
        _require(
            [folder / n for n in names],
            "CUB-200-2011",
            f"the extracted CUB_200_2011.tgz under root={str(root)!r}",
        )
        paths = _id_table(folder / "images.txt")
        labels = {k: int(v) for k, v in _id_table(folder / "image_class_labels.txt").items()}
        is_train = {
            k: v.strip() == "1" for k, v in _id_table(folder / "train_test_split.txt").items()
        }
        if set(paths) != set(labels) or set(paths) != set(is_train):
            raise ValueError(
                f"{folder}: images.txt, image_class_labels.txt and train_test_split.txt list "
                f"different image ids"
            )
        keep = [k for k in sorted(paths, key=int) if is_train[k] == (split == "train")]
        self.folder = folder
        self.split = split
        self.samples = [(folder / "images" / paths[k], labels[k] - 1) for k in keep]
        self.targets = [t for _, t in self.samples]
        if any(not 0 <= t < 200 for t in self.targets):
            raise ValueError(f"{folder}/image_class_labels.txt: labels must be in 1..200")
        if (folder / "classes.txt").is_file():
            self.classes = [
                v
                for _, v in sorted(
                    _id_table(folder / "classes.txt").items(), key=lambda kv: int(kv[0])
                )
            ]
        else:
            self.classes = [str(c) for c in range(1, 201)]
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        from PIL import Image

        path, target = self.samples[index]
        with Image.open(path) as img:
            image = img.convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, self.target_transform(target) if self.target_transform else target


def _id_table(path: Path) -> dict[str, str]:
    """``<id> <value>`` lines -> {id: value} (the value may contain spaces)."""
    out = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected '<id> <value>', got {line!r}")
        out[parts[0]] = parts[1]
    return out


def load_cub200(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> CUB200:
    """CUB-200-2011 (official train / test split); see :class:`CUB200`."""
    return CUB200(root, split, transform, target_transform)


# -- torchvision's fine-grained sets -----------------------------------------------------------


def load_stanford_cars(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> Any:
    """Stanford Cars (196 classes; 8,144 training / 8,041 test images) with torchvision's
    ``StanfordCars`` layout under ``root/stanford_cars``."""
    from torchvision.datasets import StanfordCars

    _check_split(split)
    base = Path(root).expanduser() / FOLDERS["stanford_cars"]
    if split == "train":
        need = [base / "devkit" / "cars_train_annos.mat", base / "cars_train"]
    else:
        need = [base / "cars_test_annos_withlabels.mat", base / "cars_test"]
    _require(
        [base / "devkit" / "cars_meta.mat", *need],
        f"Stanford Cars {split} split",
        "torchvision's StanfordCars layout; the original URL no longer serves the files",
    )
    ds = StanfordCars(
        str(Path(root).expanduser()), split, transform, target_transform, download=False
    )
    return _with_targets(ds, [t for _, t in ds._samples])


def load_fgvc_aircraft(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> Any:
    """FGVC-Aircraft at the variant level (100 classes): ``split="train"`` is the official
    ``trainval`` (6,667 images), ``"test"`` the test set (3,333), as GuidedMixup's code."""
    from torchvision.datasets import FGVCAircraft

    _check_split(split)
    part = "trainval" if split == "train" else "test"
    data = Path(root).expanduser() / FOLDERS["fgvc_aircraft"] / "data"
    _require(
        [data / "variants.txt", data / f"images_variant_{part}.txt", data / "images"],
        f"FGVC-Aircraft {part} split",
        "the extracted fgvc-aircraft-2013b.tar.gz",
    )
    ds = FGVCAircraft(
        str(Path(root).expanduser()),
        part,
        "variant",
        transform,
        target_transform,
        download=False,
    )
    return _with_targets(ds, ds._labels)


def load_flowers102(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> Any:
    """Oxford Flowers-102 with torchvision's ``Flowers102`` (official split: 1,020 training, 1,020
    validation, 6,149 test images; 10 training images per class).  torchvision checks the MD5
    of the two ``.mat`` files."""
    from torchvision.datasets import Flowers102

    _check_split(split, ("train", "val", "test"))
    base = Path(root).expanduser() / FOLDERS["flowers102"]
    _require(
        [base / "jpg", base / "imagelabels.mat", base / "setid.mat"],
        "Oxford Flowers-102",
        "102flowers.tgz extracted, with imagelabels.mat and setid.mat next to jpg/",
    )
    ds = Flowers102(
        str(Path(root).expanduser()), split, transform, target_transform, download=False
    )
    return _with_targets(ds, ds._labels, [str(c) for c in range(1, 103)])


def load_caltech101(
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
    seed: int = 0,
    test_fraction: float = CALTECH_TEST_FRACTION,
) -> Any:
    """Caltech-101 (101 classes, the background class left out) with torchvision's
    ``Caltech101``, split per class into (1 - test_fraction) training / test_fraction test
    images by a seeded permutation (no official split exists; GuidedMixup's code splits 0.8 /
    0.2 stratified).  Greyscale files are converted to RGB."""
    from torch.utils.data import Subset
    from torchvision import transforms as T
    from torchvision.datasets import Caltech101

    from .subsets import stratified_subset_indices

    _check_split(split)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    cats = Path(root).expanduser() / FOLDERS["caltech101"] / "101_ObjectCategories"
    _require([cats], "Caltech-101", "the extracted caltech-101 archive")
    tf = T.Compose([T.Lambda(to_rgb), transform]) if transform else T.Lambda(to_rgb)
    full = Caltech101(
        str(Path(root).expanduser()), "category", tf, target_transform, download=False
    )
    test_idx = stratified_subset_indices(full.y, fraction=test_fraction, seed=seed)
    chosen = set(test_idx.tolist())
    idx = [i for i in range(len(full.y)) if (i in chosen) == (split == "test")]
    sub = Subset(full, idx)
    return _with_targets(sub, [full.y[i] for i in idx], full.categories)


# -- ImageNet-C --------------------------------------------------------------------------------


def available_imagenet_c(root: str | Path) -> list[str]:
    """The ImageNet-C corruptions with a folder under ``root`` (in the benchmark's order)."""
    root = Path(root).expanduser()
    return [c for c in IMAGENET_C if (root / c).is_dir()]


def load_imagenet_c(
    root: str | Path,
    corruption: str,
    severity: int,
    transform: Callable[[Any], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
    classes: list[str] | None = None,
) -> Any:
    """One corruption and severity (1-5) of ImageNet-C: ``ImageFolder(root/corruption/
    severity)``, items (PIL RGB, label = index of the wnid folder).  ``classes`` (the training
    set's wnids) checks that labels agree with the model's."""
    from torchvision.datasets import ImageFolder

    if corruption not in IMAGENET_C:
        raise ValueError(f"corruption must be one of {list(IMAGENET_C)}, got {corruption!r}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be 1-5, got {severity!r}")
    folder = Path(root).expanduser() / corruption / str(severity)
    _require(
        [folder],
        f"ImageNet-C {corruption} severity {severity}",
        f"the release layout {Path(root).expanduser()}/<corruption>/<severity>/<wnid>/*.JPEG",
    )
    ds = ImageFolder(str(folder), transform=transform, target_transform=target_transform)
    if classes is not None and list(ds.classes) != list(classes):
        diff = sorted(set(ds.classes) ^ set(classes))[:5]
        raise ValueError(f"{folder}: class folders differ from the model's classes (e.g. {diff})")
    return ds


LOADERS: dict[str, Callable[..., Any]] = {
    "cub200": load_cub200,
    "stanford_cars": load_stanford_cars,
    "fgvc_aircraft": load_fgvc_aircraft,
    "caltech101": load_caltech101,
    "flowers102": load_flowers102,
}


def fine_grained_present(name: str, root: str | Path) -> bool:
    """Whether the files of fine-grained data set ``name`` are under ``root`` (its folder)."""
    base = Path(root).expanduser() / FOLDERS[name]
    marker = {
        "cub200": base / "images.txt",
        "stanford_cars": base / "devkit" / "cars_meta.mat",
        "fgvc_aircraft": base / "data" / "variants.txt",
        "caltech101": base / "101_ObjectCategories",
        "flowers102": base / "setid.mat",
    }[name]
    return marker.exists()


def load_fine_grained(
    name: str,
    root: str | Path,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    seed: int = 0,
) -> Any:
    """One of :data:`FINE_GRAINED` by name (``seed``: Caltech-101's split only)."""
    if name not in LOADERS:
        raise ValueError(f"name must be one of {list(FINE_GRAINED)}, got {name!r}")
    if name == "caltech101":
        return load_caltech101(root, split, transform, seed=seed)
    return LOADERS[name](root, split, transform)
