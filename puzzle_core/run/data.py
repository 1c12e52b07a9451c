"""The data of a run: data sets with the reference transforms, seeded subsets, per-item seeded
augmentation and the batches of each epoch and rank."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .config import TrainConfig


def _stats(data: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    arr = data.reshape(-1, data.shape[-1]).astype(np.float64) / 255
    return tuple(arr.mean(0).tolist()), tuple(arr.std(0).tolist())


# synthetic-objects' training-set statistics by (image size, seed): the same values, computed
# once per process (they cost seconds at 64 px, more than a smoke run's training)
_SYNTHETIC_STATS: dict[tuple[int, int], tuple[tuple[float, ...], tuple[float, ...]]] = {}


def _synthetic_stats(data: np.ndarray, image_size: int, seed: int) -> tuple[tuple, tuple]:
    key = (image_size, seed)
    if key not in _SYNTHETIC_STATS:
        _SYNTHETIC_STATS[key] = _stats(data)
    return _SYNTHETIC_STATS[key]


class _Switchable:
    """A transform that can be replaced between epochs (the phases of Table 5)."""

    def __init__(self, transform: Any) -> None:
        self.current = transform

    def __call__(self, img: Any) -> Any:
        return self.current(img)


def build_data(cfg: TrainConfig) -> tuple[Dataset, Dataset, int, int, tuple, tuple]:
    """-> (train set, test set, classes, channels, mean, std) with the reference transforms
    (CIFAR / synthetic: flip + RandomCrop(padding 2); Tiny-ImageNet: flip + RandomCrop(64,
    padding 4); ImageNet: RandomResizedCrop + flip; the fine-grained sets of GuidedMixup:
    Resize(size * 8 / 7) + RandomCrop(size) + flip, test Resize + CenterCrop(size), size =
    ``cfg.image_size`` (224); normalisation for both splits)."""
    from torchvision import transforms as T

    from ..data import FashionMNIST, SyntheticObjects, fashion_mnist_transforms, load_cifar

    if cfg.dataset == "synthetic":
        probe = SyntheticObjects(train=True, image_size=cfg.image_size, seed=cfg.seed)
        mean, std = _synthetic_stats(probe.data, cfg.image_size, cfg.seed)
        size = cfg.image_size
        train_tf = T.Compose(
            [
                T.RandomHorizontalFlip(),
                T.RandomCrop(size, padding=2 if size <= 32 else 4),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )
        test_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        probe.transform = train_tf
        test = SyntheticObjects(train=False, image_size=size, seed=cfg.seed, transform=test_tf)
        return probe, test, len(probe.classes), 3, mean, std
    if cfg.dataset == "fashion_mnist":
        from ..data.fashion_mnist import MEAN, STD

        train = FashionMNIST(cfg.data_root, True, fashion_mnist_transforms(True, 32, 1))
        test = FashionMNIST(cfg.data_root, False, fashion_mnist_transforms(False, 32, 1))
        return train, test, 10, 1, tuple(MEAN), tuple(STD)
    if cfg.dataset == "tiny_imagenet":
        from ..data import tiny_imagenet as tiny

        train = tiny.load_tiny_imagenet(
            cfg.data_root, "train", tiny.tiny_imagenet_train_transform()
        )
        test = tiny.load_tiny_imagenet(cfg.data_root, "val", tiny.tiny_imagenet_test_transform())
        return train, test, 200, 3, tiny.MEAN, tiny.STD
    if cfg.dataset == "imagenet":
        from ..data import imagenet as inet

        size = cfg.at_epoch(0).image_size
        tf = _Switchable(inet.imagenet_train_transform(size, cfg.phase_scale(0) or (0.08, 1.0)))
        train = inet.load_imagenet(cfg.data_root, "train", tf)
        test = inet.load_imagenet(cfg.data_root, "val", inet.imagenet_test_transform())
        return train, test, len(train.classes), 3, inet.MEAN, inet.STD
    if cfg.dataset in ("cub200", "stanford_cars", "fgvc_aircraft", "caltech101", "flowers102"):
        from ..data import fine_grained as fg

        size = cfg.image_size
        # Caltech-101 has no official split: seeded by the run's seed, as GuidedMixup's code
        train = fg.load_fine_grained(
            cfg.dataset, cfg.data_root, "train", fg.fine_grained_train_transform(size), cfg.seed
        )
        test = fg.load_fine_grained(
            cfg.dataset, cfg.data_root, "test", fg.fine_grained_test_transform(size), cfg.seed
        )
        return train, test, fg.NUM_CLASSES[cfg.dataset], 3, fg.MEAN, fg.STD
    from ..data.cifar import cifar_normalization, cifar_test_transform, cifar_train_transform

    train = load_cifar(
        cfg.dataset, cfg.data_root, train=True, transform=cifar_train_transform(cfg.dataset)
    )
    test = load_cifar(
        cfg.dataset, cfg.data_root, train=False, transform=cifar_test_transform(cfg.dataset)
    )
    mean, std = cifar_normalization(cfg.dataset)
    return train, test, (100 if cfg.dataset == "cifar100" else 10), 3, mean, std


def base_and_indices(ds: Dataset) -> tuple[Dataset, list[int] | None]:
    """The data set under (possibly nested) ``Subset`` wrappers and the indices into it of the
    wrapper's items (None when ``ds`` is not a Subset)."""
    idx: list[int] | None = None
    while isinstance(ds, torch.utils.data.Subset):
        outer = list(ds.indices)
        idx = outer if idx is None else [outer[i] for i in idx]
        ds = ds.dataset
    return ds, idx


def set_epoch_transform(train_set: Dataset, cfg: TrainConfig, epoch: int) -> None:
    """ImageNet phases: crop size and scale of this epoch (no-op elsewhere)."""
    if cfg.dataset != "imagenet" or not cfg.phases:
        return
    from ..data.imagenet import imagenet_train_transform

    base, _ = base_and_indices(train_set)
    size = cfg.at_epoch(epoch).image_size
    base.transform.current = imagenet_train_transform(size, cfg.phase_scale(epoch) or (0.08, 1.0))


class SeededItems(Dataset):
    """Items of ``dataset`` whose random augmentation is drawn from a generator seeded by
    (``seed``, index): the same augmented sample whatever batch, rank or worker loads it."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        s = (self.seed * 1_000_003 + int(index)) % 2**63
        torch.default_generator.manual_seed(s)  # torchvision's random transforms
        random.seed(s)  # PIL-level ops that use Python's random
        return self.dataset[index]


def epoch_batches(
    n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This rank's index lists for one epoch: a permutation of range(n) seeded by ``seed``, cut
    into global batches of ``batch_size`` (the last, shorter one dropped when there is more than
    one batch, as ``drop_last``), each split into ``world`` equal contiguous shards."""
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {world} processes")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    full = n // batch_size if n > batch_size else 1
    shard = batch_size // world if n > batch_size else -(-n // world)
    out = []
    for b in range(full):
        glob = perm[b * batch_size : (b + 1) * batch_size]
        out.append(glob[rank * shard : (rank + 1) * shard])
    return [o for o in out if o]


def subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded, class-stratified subset of about ``n`` items (None: the whole set)."""
    size = len(ds)  # type: ignore[arg-type]
    if n is None or n >= size:
        return ds
    from ..data import stratified_subset

    return stratified_subset(ds, fraction=n / size, seed=seed)


def raw_test_images(test_set: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 3) and labels of a (possibly subset) test set held as arrays (CIFAR,
    synthetic-objects; grey Fashion-MNIST is zero-padded to 32x32 and repeated to 3 channels,
    as imagecorruptions needs RGB of at least 32x32)."""
    from ..data import targets_of

    base, idx = base_and_indices(test_set)
    data = getattr(base, "data", None)
    if isinstance(data, torch.Tensor):
        data = data.numpy()
    if isinstance(data, np.ndarray) and data.ndim == 3 and data.dtype == np.uint8:
        pad = max(0, 32 - min(data.shape[1:]))
        data = np.pad(data, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
        data = np.repeat(data[..., None], 3, axis=-1)
    if not isinstance(data, np.ndarray) or data.ndim != 4 or data.shape[-1] != 3:
        raise ValueError(
            "corruption='generate' needs a test set held as uint8 arrays (CIFAR, "
            f"synthetic-objects, Fashion-MNIST); {type(base).__name__} is not"
        )
    labels = np.asarray(targets_of(base))
    if idx is not None:
        data, labels = data[idx], labels[idx]
    return np.asarray(data), labels


def batches_with_masks(test_set: Dataset, batch_size: int, batches: int):
    """Yield up to ``batches`` (x, y, object masks or None) from the start of a test set; the
    masks (B, H, W) come from synthetic-objects (through a Subset when there is one)."""
    base, idx = base_and_indices(test_set)
    masks = getattr(base, "masks", None)
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False)
    for b, (x, y) in enumerate(loader):
        if b >= batches:
            return
        m = None
        if masks is not None:
            rows = range(b * batch_size, b * batch_size + len(y))
            m = torch.stack(
                [torch.as_tensor(np.asarray(masks[idx[r] if idx else r])).float() for r in rows]
            )
        yield x, y, m
