"""puzzle_core.data: the synthetic object set (determinism, masks, balance, API), Fashion-MNIST
(idx parsing, discovery, the real files when installed), CIFAR / Tiny-ImageNet / ImageNet loaders
on fake layouts, CIFAR-100-C (generation at every severity, the .npy loader) and stratified
subsets."""

import gzip
import pickle
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from puzzle_core.data import (
    CIFAR100_MEAN,
    CIFAR100_STD,
    CORRUPTIONS,
    LIBRARY_BROKEN,
    LIBRARY_WORKING,
    SCARCITY_FRACTIONS,
    STANDARD,
    CIFARCorrupted,
    FashionMNIST,
    SyntheticObjects,
    available_corruptions,
    cifar_normalization,
    cifar_test_transform,
    cifar_train_transform,
    corrupt_images,
    fashion_mnist_transforms,
    find_fashion_mnist,
    find_tiny_imagenet,
    generate_corruptions,
    generate_synthetic_objects,
    imagenet_test_transform,
    imagenet_train_transform,
    load_cifar,
    load_corruption,
    load_fashion_mnist_arrays,
    load_imagenet,
    load_tiny_imagenet,
    per_class_counts,
    read_idx,
    reorganize_val,
    stratified_subset,
    stratified_subset_indices,
)
from puzzle_core.data import fashion_mnist as fm_module
from puzzle_core.data.synthetic import CLASSES as SYN_CLASSES


# ------------------------------------------------------------------------------------------
# synthetic-objects
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def syn32():
    return generate_synthetic_objects(12, image_size=32, seed=3, layers=True)


@pytest.mark.parametrize("size", [32, 64])
def test_synthetic_shapes_dtypes_and_balance(size):
    a = generate_synthetic_objects(6, image_size=size, seed=0)
    n = 60
    assert a.data.shape == (n, size, size, 3) and a.data.dtype == np.uint8
    assert a.masks.shape == (n, size, size) and a.masks.dtype == np.bool_
    assert a.targets.shape == (n,) and a.targets.dtype == np.int64
    assert a.boxes.shape == (n, 4)
    assert np.bincount(a.targets).tolist() == [6] * 10
    assert list(a.classes) == list(SYN_CLASSES[:10]) and len(set(a.classes)) == 10
    assert a.data.std() > 20  # not blank


def test_synthetic_deterministic_from_seed():
    a = generate_synthetic_objects(4, seed=7)
    b = generate_synthetic_objects(4, seed=7)
    c = generate_synthetic_objects(4, seed=8)
    t = generate_synthetic_objects(4, seed=7, train=False)
    assert np.array_equal(a.data, b.data) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.data, c.data)
    assert not np.array_equal(a.data, t.data)
    # The 64 px set shows the same scenes as the 32 px one.
    big = generate_synthetic_objects(4, seed=7, image_size=64)
    assert np.array_equal(big.targets, a.targets) and np.allclose(big.scales, a.scales)
    area32 = a.masks.mean(axis=(1, 2))
    area64 = big.masks.mean(axis=(1, 2))
    assert np.abs(area32 - area64).max() < 0.05


def test_synthetic_masks_match_the_drawn_objects(syn32):
    a, size = syn32, 32
    # The image is exactly the foreground on the mask and the background elsewhere.
    assert np.array_equal(a.data, np.where(a.masks[..., None], a.foreground, a.background))
    areas = a.masks.sum(axis=(1, 2))
    assert (areas > 0).all()
    for i in range(len(a.data)):
        y0, x0, y1, x1 = a.boxes[i]
        assert 0 <= y0 < y1 <= size and 0 <= x0 < x1 <= size
        assert a.masks[i, y0:y1, x0:x1].sum() == areas[i]  # the box holds the whole mask
        assert a.masks[i, y0].any() and a.masks[i, y1 - 1].any()  # and is tight
        assert a.masks[i, :, x0].any() and a.masks[i, :, x1 - 1].any()
    # A disk's area is pi (0.9 s / 2)^2 (template radius 0.9 of the half side), any aspect.
    disk = a.targets == SYN_CLASSES.index("disk")
    expected = np.pi * (0.9 * a.scales[disk] * size / 2) ** 2
    assert np.allclose(areas[disk] / expected, 1.0, atol=0.08)
    # A square fills about 0.75^2 of its template square.
    sq = a.targets == SYN_CLASSES.index("square")
    assert np.allclose(areas[sq] / (0.75 * a.scales[sq] * size) ** 2, 1.0, atol=0.12)
    # Objects are visible: mean luminance inside and outside the mask differ.
    lum = a.data.astype(float) @ np.array([0.299, 0.587, 0.114])
    inside = (lum * a.masks).sum((1, 2)) / areas
    outside = (lum * ~a.masks).sum((1, 2)) / (~a.masks).sum((1, 2))
    assert np.median(np.abs(inside - outside)) > 25


def test_synthetic_class_is_independent_of_colour(syn32):
    # Mean colour of the object does not identify its class: per-class means overlap.
    a = syn32
    mean_rgb = (a.data * a.masks[..., None]).sum((1, 2)) / a.masks.sum((1, 2))[:, None]
    per_class = np.stack([mean_rgb[a.targets == c].mean(0) for c in range(10)])
    assert per_class.std(0).max() < mean_rgb.std(0).min()


def test_synthetic_dataset_api():
    from torchvision import transforms as T
    from torchvision.transforms import v2

    ds = SyntheticObjects(train=True, n_per_class=3, transform=T.ToTensor(), seed=1)
    assert len(ds) == 30 and ds.name == "synthetic-objects" and "synthetic" in repr(ds)
    assert ds.classes == list(SYN_CLASSES[:10]) and ds.class_to_idx["disk"] == 0
    assert ds.data.dtype == np.uint8 and ds.data.shape == (30, 32, 32, 3)
    assert ds.masks.shape == (30, 32, 32) and isinstance(ds.targets, list)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and isinstance(y, int) and y == ds.targets[0]
    raw = SyntheticObjects(train=True, n_per_class=3, seed=1, target_transform=lambda t: t + 100)
    img, y2 = raw[0]
    assert isinstance(img, Image.Image) and img.size == (32, 32) and y2 == y + 100
    assert np.array_equal(np.asarray(img), ds.data[0])
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert xb.shape == (8, 3, 32, 32) and yb.shape == (8,)
    # return_mask: a v2 pipeline moves the image and the mask together.
    flip = v2.Compose([v2.PILToTensor(), v2.RandomHorizontalFlip(p=1.0)])
    dm = SyntheticObjects(train=False, n_per_class=2, image_size=64, return_mask=True, seed=1)
    assert len(dm) == 20 and dm[0][0].size == (64, 64)
    dm.transform = flip
    img, _, mask = dm[5]
    assert mask.dtype == torch.bool and mask.shape == (64, 64)
    assert torch.equal(mask, torch.from_numpy(dm.masks[5]).flip(-1))
    assert torch.equal(img, torch.from_numpy(dm.data[5]).permute(2, 0, 1).flip(-1))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_per_class=0), "n_per_class"),
        (dict(n_per_class=2, image_size=4), "image_size"),
        (dict(n_per_class=2, num_classes=1), "num_classes"),
        (dict(n_per_class=2, num_classes=len(SYN_CLASSES) + 1), "num_classes"),
        (dict(n_per_class=2, seed=-1), "seed"),
    ],
)
def test_synthetic_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate_synthetic_objects(**kwargs)


def test_synthetic_generation_is_fast():
    generate_synthetic_objects(1)  # warm the photo / template caches
    t = time.perf_counter()
    a = generate_synthetic_objects(300, image_size=32, num_classes=12)
    elapsed = time.perf_counter() - t
    assert len(a.data) == 3600 and np.bincount(a.targets).tolist() == [300] * 12
    assert elapsed < 10.0, f"3,600 images took {elapsed:.1f} s"


# ------------------------------------------------------------------------------------------
# Fashion-MNIST
# ------------------------------------------------------------------------------------------
def _write_idx(path, arr, compress):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip_and_errors(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("x.gz" if compress else "x")
    _write_idx(p, arr, compress)
    out = read_idx(p)
    assert out.dtype == np.uint8 and np.array_equal(out, arr)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04" + bytes(8))
    with pytest.raises(ValueError, match="idx"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(3))
    with pytest.raises(ValueError, match="header"):
        read_idx(short)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


def _fake_fashion_root(root, n=5):
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        _write_idx(raw / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)), True)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, False)
    return raw


def test_fashion_mnist_root_is_searched_first(tmp_path):
    raw = _fake_fashion_root(tmp_path)
    assert find_fashion_mnist(tmp_path) == raw
    # The fake root wins over any installed copy, and its wrong sizes are reported.
    with pytest.raises(ValueError, match=r"expected \(60000, 28, 28\)"):
        load_fashion_mnist_arrays(tmp_path, train=True)


def test_fashion_mnist_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fm_module, "debian_dir", lambda: None)
    assert find_fashion_mnist(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        FashionMNIST()
    # With a root but no files and no download: torchvision fails, the message says what to do.
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST(tmp_path / "empty", download=False)


REAL_FMNIST = find_fashion_mnist()


@pytest.mark.skipif(
    REAL_FMNIST is None,
    reason="Fashion-MNIST idx files absent: `apt-get install dataset-fashion-mnist` (Debian)",
)
def test_fashion_mnist_real_files():
    test = FashionMNIST(train=False, verify=True)
    assert len(test) == 10000 and test.data.shape == (10000, 28, 28)
    assert test.data.dtype == torch.uint8 and test.targets.dtype == torch.int64
    assert torch.bincount(test.targets).tolist() == [1000] * 10
    assert test.source.startswith("idx:")
    img, label = test[0]
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (28, 28)
    assert 0 <= label < 10 and test.classes[9] == "Ankle boot"
    train_images, train_labels, _ = load_fashion_mnist_arrays(train=True)
    assert train_images.shape == (60000, 28, 28) and np.bincount(train_labels).min() == 6000
    assert abs(train_images.mean() - 72.94) < 0.01  # pixel mean of the published training set
    x = fashion_mnist_transforms(train=True, size=32, channels=3)(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_fashion_mnist_transforms_arguments():
    img = Image.fromarray(np.zeros((28, 28), dtype=np.uint8))
    assert fashion_mnist_transforms(train=False)(img).shape == (1, 28, 28)
    with pytest.raises(ValueError, match="size"):
        fashion_mnist_transforms(train=True, size=30)
    with pytest.raises(ValueError, match="channels"):
        fashion_mnist_transforms(train=True, channels=2)


# ------------------------------------------------------------------------------------------
# CIFAR
# ------------------------------------------------------------------------------------------
def test_cifar_constants_and_transforms():
    mean, std = cifar_normalization("cifar100")
    assert np.allclose(np.array(mean) * 255, (129.3, 124.1, 112.4))
    assert np.allclose(np.array(std) * 255, (68.2, 65.4, 70.4))
    assert np.allclose(np.array(cifar_normalization("CIFAR-10")[0]) * 255, (125.3, 123.0, 113.9))
    train = cifar_train_transform("cifar100")
    names = [type(t).__name__ for t in train.transforms]
    assert names == ["RandomHorizontalFlip", "RandomCrop", "ToTensor", "Normalize"]
    assert train.transforms[1].padding == 2 and train.transforms[1].size == (32, 32)
    img = Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8))
    assert train(img).shape == (3, 32, 32)
    x = cifar_test_transform("cifar100")(img)
    expected = (200 / 255 - torch.tensor(CIFAR100_MEAN)) / torch.tensor(CIFAR100_STD)
    assert torch.allclose(x[:, 5, 5], expected, atol=1e-6)
    with pytest.raises(ValueError, match="name"):
        cifar_normalization("svhn")


def test_cifar_missing_root_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar("cifar100", tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar("cifar10", tmp_path)
    with pytest.raises(ValueError, match="root"):
        load_cifar("cifar100", None)


def _fake_cifar100(root, n=6):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        entry = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "fine_labels": list(range(n)),
            "coarse_labels": [0] * n,
        }
        (folder / split).write_bytes(pickle.dumps(entry))
    names = [f"class{i:03d}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names}))


def test_cifar_fake_layout_loads_and_corruption_is_reported(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    _fake_cifar100(tmp_path)
    with pytest.raises(FileNotFoundError, match="corrupted"):  # md5 check of torchvision
        load_cifar("cifar100", tmp_path)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    ds = load_cifar("cifar100", tmp_path, train=False, transform=cifar_test_transform())
    assert len(ds) == 6 and ds.data.shape == (6, 32, 32, 3) and ds.data.dtype == np.uint8
    x, y = ds[3]
    assert x.shape == (3, 32, 32) and y == 3 and len(ds.classes) == 100


# ------------------------------------------------------------------------------------------
# Tiny-ImageNet
# ------------------------------------------------------------------------------------------
WNIDS = ["n02", "n01", "n03"]  # unsorted on purpose


def _jpeg(path, grey=False, size=64, seed=0):
    rng = np.random.default_rng(seed)
    shape = (size, size) if grey else (size, size, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, "JPEG")


def _fake_tiny(base):
    root = base / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "test" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in WNIDS))
    lines = []
    for c, w in enumerate(WNIDS):
        (root / "train" / w / "images").mkdir(parents=True)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
        for k in range(2):
            _jpeg(root / "train" / w / "images" / f"{w}_{k}.JPEG", grey=(k == 1), seed=c * 10 + k)
        for k in range(2):
            name = f"val_{2 * c + k}.JPEG"
            _jpeg(root / "val" / "images" / name, seed=100 + 2 * c + k)
            lines.append(f"{name}\t{w}\t0\t0\t10\t10")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_tiny_imagenet_val_reorganisation_is_idempotent(tmp_path):
    root = _fake_tiny(tmp_path)
    with pytest.raises(ValueError, match="loose files"):
        load_tiny_imagenet(tmp_path, "val", reorganize=False)
    assert reorganize_val(root) == 6
    assert reorganize_val(root) == 0  # second run: nothing to move
    assert sorted(p.name for p in (root / "val" / "images").iterdir()) == sorted(WNIDS)
    train = load_tiny_imagenet(tmp_path, "train", transform=lambda im: im)
    val = load_tiny_imagenet(tmp_path, "val")
    assert train.class_to_idx == val.class_to_idx == {"n01": 0, "n02": 1, "n03": 2}
    assert len(train) == 6 and len(val) == 6
    assert sorted(set(train.targets)) == sorted(set(val.targets)) == [0, 1, 2]
    img, _ = train[1]  # a greyscale file, converted
    assert img.mode == "RGB" and img.size == (64, 64)
    # val labels follow the annotation file
    for path, label in val.samples:
        assert path.split("/")[-2] == WNIDS[int(path.split("_")[-1].split(".")[0]) // 2]
        assert val.classes[label] == path.split("/")[-2]


def test_tiny_imagenet_zip_and_errors(tmp_path):
    src = _fake_tiny(tmp_path / "src")
    dest = tmp_path / "dest"
    dest.mkdir()
    with zipfile.ZipFile(dest / "tiny-imagenet-200.zip", "w") as zf:
        for p in src.rglob("*"):
            zf.write(p, p.relative_to(src.parent))
    folder = find_tiny_imagenet(dest)
    assert folder == dest / "tiny-imagenet-200" and (folder / "wnids.txt").is_file()
    assert find_tiny_imagenet(dest) == folder  # reused, not extracted again
    ds = load_tiny_imagenet(dest, "val")
    assert len(ds) == 6
    from puzzle_core.data import tiny_imagenet_test_transform, tiny_imagenet_train_transform

    assert tiny_imagenet_train_transform()(ds[0][0]).shape == (3, 64, 64)
    assert tiny_imagenet_test_transform()(ds[0][0]).shape == (3, 64, 64)
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200"):
        find_tiny_imagenet(tmp_path / "nothing")
    with pytest.raises(ValueError, match="split"):
        load_tiny_imagenet(dest, "test")
    ann = folder / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_99.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match="n99"):
        reorganize_val(folder)


# ------------------------------------------------------------------------------------------
# ImageNet
# ------------------------------------------------------------------------------------------
def test_imagenet_image_folder_and_transforms(tmp_path):
    for split in ("train", "val"):
        for c, w in enumerate(["n0002", "n0001"]):
            (tmp_path / split / w).mkdir(parents=True)
            _jpeg(tmp_path / split / w / f"{w}_{split}.JPEG", size=96, seed=c)
    ds = load_imagenet(tmp_path, "val", transform=imagenet_test_transform())
    assert ds.class_to_idx == {"n0001": 0, "n0002": 1}
    x, y = ds[0]
    assert x.shape == (3, 224, 224) and y == 0
    names = [type(t).__name__ for t in imagenet_test_transform().transforms]
    assert names == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert imagenet_test_transform().transforms[0].size == 256
    img = Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8))
    assert imagenet_train_transform()(img).shape == (3, 224, 224)
    (tmp_path / "val" / "n0003").mkdir()
    _jpeg(tmp_path / "val" / "n0003" / "x.JPEG", size=40)
    with pytest.raises(ValueError, match="differ"):
        load_imagenet(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="train"):
        load_imagenet(tmp_path / "nothing", "train")
    flat = tmp_path / "flat"
    (flat / "val").mkdir(parents=True)
    _jpeg(flat / "val" / "ILSVRC2012_val_00000001.JPEG", size=40)
    with pytest.raises(FileNotFoundError, match="class folders"):
        load_imagenet(flat, "val")
    with pytest.raises(ValueError, match="split"):
        load_imagenet(tmp_path, "test")


# ------------------------------------------------------------------------------------------
# CIFAR-100-C
# ------------------------------------------------------------------------------------------
def test_corruption_names():
    assert len(CORRUPTIONS) == 19 and len(set(CORRUPTIONS)) == 19
    assert len(STANDARD) == 15
    assert set(LIBRARY_BROKEN) == {"glass_blur", "gaussian_blur", "fog"}
    assert len(LIBRARY_WORKING) == 16


def _fake_release(root, n=4, size=32):
    root.mkdir(parents=True, exist_ok=True)
    for c in CORRUPTIONS[:3]:
        arr = np.repeat(np.arange(1, 6, dtype=np.uint8), n)[:, None, None, None]
        np.save(root / f"{c}.npy", np.broadcast_to(arr, (5 * n, size, size, 3)).copy())
    np.save(root / "labels.npy", np.tile(np.arange(n, dtype=np.uint8), 5))


def test_corruption_loader_on_fake_release(tmp_path):
    _fake_release(tmp_path, n=4)
    assert available_corruptions(tmp_path) == list(CORRUPTIONS[:3])
    images, labels = load_corruption(tmp_path, "shot_noise")
    assert images.shape == (20, 32, 32, 3) and labels.dtype == np.int64
    for s in range(1, 6):
        im, lab = load_corruption(tmp_path, "shot_noise", severity=s)
        assert im.shape == (4, 32, 32, 3) and (np.asarray(im) == s).all()  # severity-major
        assert lab.tolist() == [0, 1, 2, 3]
    ds = CIFARCorrupted(tmp_path, "gaussian_noise", severity=3, transform=lambda im: im)
    assert len(ds) == 4 and repr(ds).startswith("CIFARCorrupted")
    img, y = ds[2]
    assert img.size == (32, 32) and np.asarray(img)[0, 0, 0] == 3 and y == 2
    with pytest.raises(FileNotFoundError, match="fog.npy"):
        load_corruption(tmp_path, "fog")
    with pytest.raises(ValueError, match="corruption"):
        load_corruption(tmp_path, "rain")
    with pytest.raises(ValueError, match="severity"):
        load_corruption(tmp_path, "shot_noise", severity=6)
    np.save(tmp_path / "labels.npy", np.zeros(7, dtype=np.uint8))
    with pytest.raises(ValueError, match="5 N"):
        load_corruption(tmp_path, "shot_noise")


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory):
    pytest.importorskip("imagecorruptions", reason="pip install imagecorruptions==1.1.2")
    a = generate_synthetic_objects(1, num_classes=3, seed=5)  # 3 images, 32x32
    out = tmp_path_factory.mktemp("c100c")
    res = generate_corruptions(a.data, a.targets, seed=0, out_dir=out)
    return a, res, out


def test_generation_every_type_every_severity(corrupted):
    a, res, out = corrupted
    assert list(res) == list(CORRUPTIONS)  # all 19 with compat=True
    for c, arr in res.items():
        assert arr.shape == (15, 32, 32, 3) and arr.dtype == np.uint8, c
        for s in range(1, 6):
            block = arr[3 * (s - 1) : 3 * s].astype(int)
            assert np.abs(block - a.data).mean() > 0.5, (c, s)  # every severity corrupts
    # Written in the published layout and read back by the loader.
    assert available_corruptions(out) == list(CORRUPTIONS)
    ds = CIFARCorrupted(out, "fog", severity=2)
    assert np.array_equal(np.asarray(ds.data), res["fog"][3:6])
    assert ds.targets == a.targets.tolist()
    assert np.load(out / "labels.npy").dtype == np.uint8


def test_generation_deterministic_and_library_untouched(corrupted):
    from puzzle_core.data.corruptions import _library

    a, res, _ = corrupted
    state = np.random.get_state()[1].copy()
    for c in ("gaussian_noise", "impulse_noise", "glass_blur", "fog", "frost"):
        again = corrupt_images(a.data, c, 4, seed=0)
        assert np.array_equal(again, res[c][9:12]), c
    other = corrupt_images(a.data, "gaussian_noise", 4, seed=1)
    assert not np.array_equal(other, res["gaussian_noise"][9:12])
    assert np.array_equal(np.random.get_state()[1], state)  # global stream restored
    lib = _library()
    assert lib.np is np and not hasattr(lib.sk, "_skimage")  # shims removed afterwards


def test_generation_compat_matches_the_library_formula(corrupted):
    from skimage.filters import gaussian

    a, res, _ = corrupted
    for s, sigma in enumerate([1, 2, 3, 4, 6], 1):  # imagecorruptions gaussian_blur
        ref = np.uint8(
            np.clip(gaussian(a.data[0] / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255
        )
        assert np.array_equal(res["gaussian_blur"][3 * (s - 1)], ref)


def test_generation_library_as_shipped_and_bad_input(corrupted):
    from puzzle_core.data import library_status

    status = library_status(compat=False)
    assert {c for c, v in status.items() if v != "ok"} == set(LIBRARY_BROKEN)
    with pytest.raises(RuntimeError, match="compat=True"):
        corrupt_images(corrupted[0].data, "fog", 1, compat=False)
    with pytest.raises(ValueError, match="32x32"):
        corrupt_images(np.zeros((1, 28, 28, 3), np.uint8), "contrast", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt_images(corrupted[0].data, "contrast", 0)
    with pytest.raises(ValueError, match="labels"):
        generate_corruptions(corrupted[0].data, [0, 1])


# ------------------------------------------------------------------------------------------
# Subsets
# ------------------------------------------------------------------------------------------
def test_stratified_subsets_per_class_fractions():
    targets = np.repeat(np.arange(100), 500)  # CIFAR-100 train
    np.random.default_rng(0).shuffle(targets)
    previous = set()
    for frac, k in zip(SCARCITY_FRACTIONS, (50, 100, 250), strict=True):
        idx = stratified_subset_indices(targets, fraction=frac, seed=0)
        assert np.array_equal(idx, np.unique(idx))
        assert set(per_class_counts(targets[idx]).values()) == {k}
        assert np.array_equal(idx, stratified_subset_indices(targets, fraction=frac, seed=0))
        assert previous <= set(idx.tolist())  # nested for one seed
        previous = set(idx.tolist())
    other = stratified_subset_indices(targets, fraction=0.1, seed=1)
    assert not np.array_equal(other, stratified_subset_indices(targets, fraction=0.1, seed=0))
    by_count = stratified_subset_indices(targets, per_class=50, seed=0)
    assert np.array_equal(by_count, stratified_subset_indices(targets, fraction=0.1, seed=0))
    # unbalanced classes: each keeps round(fraction * n_c), at least 1
    uneven = np.array([0] * 10 + [1] * 3 + [2] * 1)
    counts = per_class_counts(uneven[stratified_subset_indices(uneven, fraction=0.2)])
    assert counts == {0: 2, 1: 1, 2: 1}


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(fraction=0.0), "fraction"),
        (dict(fraction=1.5), "fraction"),
        (dict(per_class=0), "per_class"),
        (dict(fraction=0.1, per_class=5), "exactly one"),
        (dict(), "exactly one"),
        (dict(fraction=0.1, seed=-1), "seed"),
    ],
)
def test_stratified_subset_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        stratified_subset_indices(np.arange(10) % 2, **kwargs)


def test_stratified_subset_of_a_dataset():
    ds = SyntheticObjects(train=False, n_per_class=10, seed=2)
    sub = stratified_subset(ds, fraction=0.2, seed=0)
    assert len(sub) == 20 and per_class_counts(sub.targets) == {c: 2 for c in range(10)}
    assert [ds.targets[i] for i in sub.indices] == sub.targets
    with pytest.raises(ValueError, match="targets"):
        stratified_subset_indices(np.zeros((2, 2), dtype=int), fraction=0.5)
