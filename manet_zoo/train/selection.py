"""Honest model selection: a stratified validation split held out from the training
data with a fixed, recorded seed, and a digest of every split list."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np


def stratified_split(
    targets: Sequence[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): ``fraction`` of each class, rounded, at least
    one image of every class with two or more, drawn with ``numpy.random.default_rng(seed)``.
    Both lists are sorted, so the split depends only on the labels, fraction and seed.

    Example:
        >>> train, val = stratified_split([0] * 10 + [1] * 20, 0.1, seed=0)
        >>> len(train), len(val)
        (27, 3)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(targets)
    val: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, round(fraction * len(members))))
        val += rng.permutation(members)[:take].tolist()
    val_set = set(val)
    return [i for i in range(len(labels)) if i not in val_set], sorted(val)


def split_lines(keys: Iterable[str], labels: Iterable[int]) -> list[str]:
    """One ``key<TAB>label`` line per sample: the text written to ``splits/*.txt``."""
    return [f"{k}\t{y}" for k, y in zip(keys, labels, strict=True)]


def splits_digest(splits: dict[str, list[str]]) -> str:
    """sha256 over the named split lists (names sorted), identifying the exact data used."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        digest.update(f"[{name}]\n".encode())
        digest.update(("\n".join(splits[name]) + "\n").encode())
    return digest.hexdigest()
