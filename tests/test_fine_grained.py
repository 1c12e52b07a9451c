"""GuidedMixup's fine-grained and small-data sets (CUB-200-2011, Stanford Cars, FGVC-Aircraft,
Caltech-101, Flowers-102) and ImageNet-C: each loader reads a tiny fake tree of its standard
layout (a few generated images) with the right labels and splits, an absent root gives a clear
FileNotFoundError, and the run engine builds the sets with the FGVC transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from puzzle_core.data import fine_grained as fg


def _image(path: Path, value: int, size=(40, 30), mode="RGB") -> None:
    """An image whose mean encodes ``value`` (to check that an item is the right file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, value, value)
    Image.new(mode, size, colour).save(path)


def _value(img) -> int:
    return int(round(np.asarray(img).mean()))


def _fake_cub(root: Path) -> None:
    base = root / "CUB_200_2011"
    # 6 images: classes 1, 1, 2, 2, 200, 200; ids 1, 3, 5 are training images
    rows = [(1, 1), (2, 1), (3, 2), (4, 2), (5, 200), (6, 200)]
    images, labels, split = [], [], []
    for i, c in rows:
        rel = f"{c:03d}.Class_{c}/img_{i}.jpg"
        _image(base / "images" / rel, 10 * i)
        images.append(f"{i} {rel}")
        labels.append(f"{i} {c}")
        split.append(f"{i} {i % 2}")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (base / "classes.txt").write_text(
        "\n".join(f"{c} {c:03d}.Class_{c}" for c in range(1, 201)) + "\n"
    )


def test_cub200_reads_its_layout_labels_and_split(tmp_path):
    _fake_cub(tmp_path)
    train = fg.load_cub200(tmp_path, "train")
    test = fg.load_cub200(tmp_path / "CUB_200_2011", "test")  # the folder itself works too
    assert (len(train), len(test)) == (3, 3)
    assert train.targets == [0, 1, 199] and test.targets == [0, 1, 199]
    assert [_value(train[k][0]) for k in range(3)] == [10, 30, 50]
    assert [_value(test[k][0]) for k in range(3)] == [20, 40, 60]
    assert len(train.classes) == 200 and train.classes[199] == "200.Class_200"
    x, y = fg.load_cub200(tmp_path, "test", fg.fine_grained_test_transform(24))[2]
    assert x.shape == (3, 24, 24) and y == 199
    with pytest.raises(ValueError, match="split"):
        fg.load_cub200(tmp_path, "val")


def _fake_cars(root: Path) -> None:
    import scipy.io as sio

    base = root / "stanford_cars"
    dtype = [("class", "O"), ("fname", "O")]
    for split, ids, mat in (
        ("train", [(1, 3), (2, 196)], base / "devkit" / "cars_train_annos.mat"),
        ("test", [(3, 1), (4, 3)], base / "cars_test_annos_withlabels.mat"),
    ):
        ann = np.zeros((1, len(ids)), dtype=dtype)
        for k, (i, c) in enumerate(ids):
            name = f"{i:05d}.jpg"
            _image(base / f"cars_{split}" / name, 10 * i)
            ann[0, k] = (np.array([[c]], dtype=np.uint8), np.array([name]))
        mat.parent.mkdir(parents=True, exist_ok=True)
        sio.savemat(mat, {"annotations": ann})
    names = np.array([f"Car {c}" for c in range(1, 197)], dtype=object)
    sio.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})


def test_stanford_cars_reads_torchvisions_layout(tmp_path):
    _fake_cars(tmp_path)
    train, test = fg.load_stanford_cars(tmp_path, "train"), fg.load_stanford_cars(tmp_path, "test")
    assert train.targets == [2, 195] and test.targets == [0, 2]
    assert [_value(train[k][0]) for k in range(2)] == [10, 20]
    assert _value(test[1][0]) == 40 and test[1][1] == 2
    assert len(train.classes) == 196 and train.classes[0] == "Car 1"


def _fake_aircraft(root: Path) -> None:
    data = root / "fgvc-aircraft-2013b" / "data"
    variants = [f"Variant-{k}" for k in range(100)]
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    parts = {"trainval": [("0001", 5), ("0002", 99)], "test": [("0003", 0)]}
    for part, items in parts.items():
        lines = []
        for name, c in items:
            _image(data / "images" / f"{name}.jpg", 10 * int(name))
            lines.append(f"{name} {variants[c]}")
        (data / f"images_variant_{part}.txt").write_text("\n".join(lines) + "\n")


def test_fgvc_aircraft_variant_level_trainval_and_test(tmp_path):
    _fake_aircraft(tmp_path)
    train, test = fg.load_fgvc_aircraft(tmp_path, "train"), fg.load_fgvc_aircraft(tmp_path, "test")
    assert train.targets == [5, 99] and test.targets == [0]
    assert _value(train[1][0]) == 20 and train[1][1] == 99
    assert len(train.classes) == 100


def _fake_flowers(root: Path) -> None:
    import scipy.io as sio

    base = root / "flowers-102"
    labels = [1, 1, 2, 102, 2, 102, 1]  # image ids 1..7
    for i in range(1, 8):
        _image(base / "jpg" / f"image_{i:05d}.jpg", 10 * i)
    sio.savemat(base / "imagelabels.mat", {"labels": np.array([labels])})
    sio.savemat(
        base / "setid.mat",
        {"trnid": np.array([[1, 3]]), "valid": np.array([[4, 7]]), "tstid": np.array([[2, 5, 6]])},
    )


def test_flowers102_official_splits(tmp_path, monkeypatch):
    import torchvision.datasets.flowers102 as tv_flowers

    _fake_flowers(tmp_path)
    # torchvision checks the MD5 of the released .mat files; these fakes cannot match it
    monkeypatch.setattr(tv_flowers, "check_integrity", lambda *a, **k: True)
    train = fg.load_flowers102(tmp_path, "train")
    val, test = fg.load_flowers102(tmp_path, "val"), fg.load_flowers102(tmp_path, "test")
    assert train.targets == [0, 1] and val.targets == [101, 0] and test.targets == [0, 1, 101]
    assert [_value(test[k][0]) for k in range(3)] == [20, 50, 60]
    assert len(train.classes) == 102


def _fake_caltech(root: Path) -> None:
    cats = root / "caltech101" / "101_ObjectCategories"
    for c, n in (("BACKGROUND_Google", 2), ("accordion", 5), ("airplanes", 10)):
        for k in range(1, n + 1):
            _image(cats / c / f"image_{k:04d}.jpg", k, mode="L" if k == 1 else "RGB")


def test_caltech101_seeded_stratified_split_without_background(tmp_path):
    _fake_caltech(tmp_path)
    train = fg.load_caltech101(tmp_path, "train", seed=0)
    test = fg.load_caltech101(tmp_path, "test", seed=0)
    assert train.classes == ["accordion", "airplanes"]  # the background class is left out
    assert sorted(test.targets) == [0, 1, 1] and sorted(train.targets) == [0] * 4 + [1] * 8
    assert not set(train.indices) & set(test.indices)  # disjoint, together the whole set
    assert len(train) + len(test) == 15
    assert fg.load_caltech101(tmp_path, "test", seed=0).indices == test.indices  # seeded
    img, _ = next(train[k] for k in range(len(train)) if train.indices[k] in (0, 5))
    assert img.mode == "RGB"  # greyscale files converted
    x, _ = fg.load_caltech101(tmp_path, "train", fg.fine_grained_train_transform(16))[0]
    assert x.shape == (3, 16, 16)


def test_imagenet_c_layout_and_corruption_names(tmp_path):
    for wnid, v in (("n01", 10), ("n02", 20)):
        _image(tmp_path / "gaussian_noise" / "3" / wnid / "a.JPEG", v)
    assert fg.available_imagenet_c(tmp_path) == ["gaussian_noise"]
    ds = fg.load_imagenet_c(tmp_path, "gaussian_noise", 3, classes=["n01", "n02"])
    assert [y for _, y in ds] == [0, 1] and _value(ds[1][0]) == 20
    with pytest.raises(FileNotFoundError, match=r"gaussian_noise.*severity 2"):
        fg.load_imagenet_c(tmp_path, "gaussian_noise", 2)
    with pytest.raises(ValueError, match="class folders differ"):
        fg.load_imagenet_c(tmp_path, "gaussian_noise", 3, classes=["n01", "n03"])
    with pytest.raises(ValueError, match="corruption"):
        fg.load_imagenet_c(tmp_path, "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        fg.load_imagenet_c(tmp_path, "fog", 6)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("cub200", "CUB_200_2011/images.txt"),
        ("stanford_cars", "stanford_cars/devkit/cars_meta.mat"),
        ("fgvc_aircraft", "fgvc-aircraft-2013b/data/variants.txt"),
        ("caltech101", "caltech101/101_ObjectCategories"),
        ("flowers102", "flowers-102/jpg"),
    ],
)
def test_absent_root_names_the_expected_path(tmp_path, name, expected):
    from puzzle_core.run.profiles import dataset_present

    empty = tmp_path / "empty"
    with pytest.raises(FileNotFoundError, match=expected):
        fg.load_fine_grained(name, empty, "train")
    assert not empty.exists()  # nothing created (torchvision's Caltech101 would make folders)
    assert not dataset_present(name, empty)


def test_fine_grained_transforms_and_present(tmp_path):
    from puzzle_core.run.profiles import dataset_present

    img = Image.new("RGB", (300, 260), (128, 64, 32))
    tr, te = fg.fine_grained_train_transform(), fg.fine_grained_test_transform()
    assert tr(img).shape == te(img).shape == (3, 224, 224)
    assert [type(t).__name__ for t in te.transforms][:2] == ["Resize", "CenterCrop"]
    assert te.transforms[0].size == 256  # Resize(256) before the 224 crop
    assert [type(t).__name__ for t in tr.transforms][:3] == [
        "Resize",
        "RandomCrop",
        "RandomHorizontalFlip",
    ]
    with pytest.raises(ValueError, match="size"):
        fg.fine_grained_test_transform(224, 200)
    _fake_cub(tmp_path)
    _fake_aircraft(tmp_path)
    assert dataset_present("cub200", tmp_path) and dataset_present("fgvc_aircraft", tmp_path)
    assert not dataset_present("flowers102", tmp_path)


def test_the_engine_builds_a_fine_grained_run(tmp_path):
    from puzzle_core.run import TrainConfig
    from puzzle_core.run.data import build_data

    _fake_cub(tmp_path)
    cfg = TrainConfig(dataset="cub200", data_root=str(tmp_path), image_size=32, model="resnet18")
    train, test, classes, channels, mean, std = build_data(cfg)
    assert (len(train), len(test), classes, channels) == (3, 3, 200, 3)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and y == 0 and mean == fg.MEAN and std == fg.STD
    assert torch.isfinite(x).all()
