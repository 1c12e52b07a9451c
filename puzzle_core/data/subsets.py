"""Data-scarcity subsets: a fixed share (or count) of every class, seeded and stratified.

GuidedMixup Table 6 trains on 10 %, 20 % and 50 % of CIFAR-100 per class (50 / 100 / 250 of the
500 images per class); Puzzle Mix's ``--labels_per_class`` is the same idea as a count.  For one
seed the subsets are nested: the 10 % subset is contained in the 20 % one, which is contained in
the 50 % one (each class's images are ranked once by a seeded permutation and the first k kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SCARCITY_FRACTIONS = (0.1, 0.2, 0.5)  # GuidedMixup Table 6


def targets_of(dataset: Any) -> np.ndarray:
    """The integer labels (N,) of a data set: its ``targets`` (torchvision), ``labels`` or
    ``samples`` attribute, or, failing those, by indexing every item (slow)."""
    for attr in ("targets", "labels"):
        t = getattr(dataset, attr, None)
        if t is not None:
            return np.asarray(t, dtype=np.int64).reshape(-1)
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        return np.asarray([s[1] for s in samples], dtype=np.int64)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def per_class_counts(targets: Sequence[int] | np.ndarray) -> dict[int, int]:
    """{class: number of items} for the classes present."""
    t = np.asarray(targets, dtype=np.int64)
    classes, counts = np.unique(t, return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, counts, strict=True)}


def stratified_subset_indices(
    targets: Sequence[int] | np.ndarray,
    fraction: float | None = None,
    per_class: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices (sorted, int64) of a class-stratified subset of ``targets`` (N,).

    Give exactly one of ``fraction`` in (0, 1] (each class keeps round(fraction * n_c) items, at
    least 1) or ``per_class`` >= 1 (each class keeps min(per_class, n_c) items).  Deterministic
    in (targets, seed); nested across fractions / counts for one seed."""
    t = np.asarray(targets)
    if t.ndim != 1 or (t.size and not np.issubdtype(t.dtype, np.integer)):
        raise ValueError(f"targets must be a 1-D sequence of integer labels, got shape {t.shape}")
    if (fraction is None) == (per_class is None):
        raise ValueError("give exactly one of fraction or per_class")
    if fraction is not None and not (
        isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction <= 1
    ):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if per_class is not None and (
        not isinstance(per_class, (int, np.integer)) or isinstance(per_class, bool) or per_class < 1
    ):
        raise ValueError(f"per_class must be an integer >= 1, got {per_class!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    t = t.astype(np.int64)
    keep: list[np.ndarray] = []
    for c in np.unique(t):
        idx = np.flatnonzero(t == c)
        # One stream per class: a class's choice does not depend on the other classes.
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(c),)))
        ranked = idx[rng.permutation(len(idx))]
        if fraction is not None:
            k = max(1, int(np.floor(fraction * len(idx) + 0.5)))
        else:
            k = min(int(per_class), len(idx))  # type: ignore[arg-type]
        keep.append(ranked[:k])
    if not keep:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(keep)).astype(np.int64)


def stratified_subset(
    dataset: Any,
    fraction: float | None = None,
    per_class: int | None = None,
    seed: int = 0,
) -> Any:
    """``torch.utils.data.Subset`` of ``dataset`` with :func:`stratified_subset_indices` of its
    labels; the Subset also carries ``targets`` (list[int]) for the kept items."""
    from torch.utils.data import Subset

    targets = targets_of(dataset)
    idx = stratified_subset_indices(targets, fraction=fraction, per_class=per_class, seed=seed)
    sub = Subset(dataset, idx.tolist())
    sub.targets = targets[idx].tolist()  # type: ignore[attr-defined]
    return sub
