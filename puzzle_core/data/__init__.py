"""Data sets (torchvision-style; models and data know nothing of mixing).

* ``synthetic``: ``synthetic-objects``, an offline object-centric stand-in with exact object
  masks (32 px CIFAR / 64 px Tiny-ImageNet shapes), generated from a seed in seconds.
* ``fashion_mnist``: the real Fashion-MNIST, from Debian's ``dataset-fashion-mnist`` offline.
* ``cifar``: CIFAR-100 / CIFAR-10 via torchvision, reference normalisation and transforms.
* ``tiny_imagenet``: Tiny-ImageNet-200 with the validation-folder re-organisation.
* ``imagenet``: ImageNet from the ImageFolder layout, reference test transform.
* ``fine_grained``: CUB-200-2011, Stanford Cars, FGVC-Aircraft, Caltech-101 and Oxford
  Flowers-102 from their standard layouts (GuidedMixup Tables 3, 7, 8), and ImageNet-C.
* ``corruptions``: CIFAR-100-C (published ``.npy``) and a locally generated stand-in.
* ``subsets``: seeded, class-stratified data-scarcity subsets (GuidedMixup Table 6).
"""

from .cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    cifar_normalization,
    cifar_test_transform,
    cifar_train_transform,
    load_cifar,
)
from .corruptions import (
    CORRUPTIONS,
    LIBRARY_BROKEN,
    LIBRARY_WORKING,
    STANDARD,
    CIFARCorrupted,
    available_corruptions,
    corrupt_images,
    generate_corruptions,
    library_status,
    load_corruption,
)
from .fashion_mnist import (
    FashionMNIST,
    fashion_mnist_transforms,
    find_fashion_mnist,
    load_fashion_mnist_arrays,
    read_idx,
)
from .fine_grained import (
    CUB200,
    FINE_GRAINED,
    IMAGENET_C,
    available_imagenet_c,
    fine_grained_test_transform,
    fine_grained_train_transform,
    load_caltech101,
    load_cub200,
    load_fgvc_aircraft,
    load_fine_grained,
    load_flowers102,
    load_imagenet_c,
    load_stanford_cars,
)
from .imagenet import imagenet_test_transform, imagenet_train_transform, load_imagenet
from .subsets import (
    SCARCITY_FRACTIONS,
    per_class_counts,
    stratified_subset,
    stratified_subset_indices,
    targets_of,
)
from .synthetic import SyntheticArrays, SyntheticObjects, generate_synthetic_objects
from .tiny_imagenet import (
    find_tiny_imagenet,
    load_tiny_imagenet,
    reorganize_val,
    tiny_imagenet_test_transform,
    tiny_imagenet_train_transform,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CORRUPTIONS",
    "CUB200",
    "FINE_GRAINED",
    "IMAGENET_C",
    "LIBRARY_BROKEN",
    "LIBRARY_WORKING",
    "SCARCITY_FRACTIONS",
    "STANDARD",
    "CIFARCorrupted",
    "FashionMNIST",
    "SyntheticArrays",
    "SyntheticObjects",
    "available_corruptions",
    "available_imagenet_c",
    "cifar_normalization",
    "cifar_test_transform",
    "cifar_train_transform",
    "corrupt_images",
    "fashion_mnist_transforms",
    "find_fashion_mnist",
    "find_tiny_imagenet",
    "fine_grained_test_transform",
    "fine_grained_train_transform",
    "generate_corruptions",
    "generate_synthetic_objects",
    "imagenet_test_transform",
    "imagenet_train_transform",
    "library_status",
    "load_caltech101",
    "load_cifar",
    "load_corruption",
    "load_cub200",
    "load_fashion_mnist_arrays",
    "load_fgvc_aircraft",
    "load_fine_grained",
    "load_flowers102",
    "load_imagenet",
    "load_imagenet_c",
    "load_stanford_cars",
    "load_tiny_imagenet",
    "per_class_counts",
    "read_idx",
    "reorganize_val",
    "stratified_subset",
    "stratified_subset_indices",
    "targets_of",
    "tiny_imagenet_test_transform",
    "tiny_imagenet_train_transform",
]
