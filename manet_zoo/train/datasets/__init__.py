"""Dataset loaders by KIND name, each reading its owner's layout into canonical labels.

Example:
    >>> from manet_zoo.train.datasets import KINDS
    >>> KINDS["rafdb"].splits
    ('train', 'test')
    >>> # ds = load_dataset("rafdb", "~/data/RAF-DB", "train")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from manet_zoo.train.datasets.affectnet import affectnet
from manet_zoo.train.datasets.base import (
    DatasetError,
    FERDataset,
    Item,
    PartialDatasetWarning,
    SplitNotFoundError,
    UnreadableImagesError,
    merge,
)
from manet_zoo.train.datasets.caers import caers
from manet_zoo.train.datasets.custom import custom
from manet_zoo.train.datasets.fedro import fedro
from manet_zoo.train.datasets.fer2013 import fer2013, ferplus
from manet_zoo.train.datasets.rafdb import rafdb
from manet_zoo.train.datasets.ran_lists import LISTS, ran_list
from manet_zoo.train.datasets.sfew import sfew


@dataclass(frozen=True)
class Kind:
    """A dataset family: how to build a split, which splits exist, what it is."""

    name: str
    build: Callable[..., FERDataset]
    splits: tuple[str, ...]
    description: str


def _kinds() -> dict[str, Kind]:
    kinds = [
        Kind("rafdb", rafdb, ("train", "test"), "RAF-DB basic: label file + aligned images, or MA-Net's {train,test}/{0..6}/"),  # noqa: E501
        Kind("affectnet7", partial(affectnet, num_classes=7), ("train", "val"), "AffectNet 7 classes (original CSV release or images/ + annotations/)"),  # noqa: E501
        Kind("affectnet8", partial(affectnet, num_classes=8), ("train", "val"), "AffectNet 8 classes (with contempt)"),  # noqa: E501
        Kind("caers", caers, ("train", "test"), "CAER-S train/ and test/ emotion folders"),
        Kind("sfew", sfew, ("train", "val"), "SFEW 2.0 full frames Train/ and Val/"),
        Kind("sfew_aligned", partial(sfew, aligned=True), ("train", "val"), "SFEW 2.0 aligned-face folders"),  # noqa: E501
        Kind("fer2013", fer2013, ("train", "val", "test"), "FER2013 fer2013.csv or icml_face_data.csv (val = PublicTest, test = PrivateTest)"),  # noqa: E501
        Kind("ferplus", ferplus, ("train", "val", "test"), "FER+ majority vote (fer2013new.csv + fer2013.csv), 8 classes"),  # noqa: E501
        Kind("fedro", fedro, ("test",), "FED-RO occlusion test set (400 images)"),
        Kind("custom", custom, ("train", "val", "test"), "your data: ImageFolder (optionally with train/val/test) or CSV path,label[,split]"),  # noqa: E501
    ]  # fmt: skip
    for name in LISTS:
        what = "RAF-DB test" if name.startswith("rafdb") else "AffectNet validation"
        kinds.append(Kind(name, partial(ran_list, name), ("test",), f"RAN {name} list over {what}"))
    return {k.name: k for k in kinds}


KINDS: dict[str, Kind] = _kinds()


def load_dataset(kind: str, root: str | os.PathLike[str], split: str, **options: Any) -> FERDataset:
    """Split ``split`` of dataset ``kind`` at ``root`` (see :data:`KINDS`).

    ``options`` go to the loader: ``bad_images`` ("fail" or "skip"), ``verify``
    (decode every image up front), ``list_file`` (RAN lists), ``classes`` (custom),
    ``box_margin`` (AffectNet).
    """
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind].build(root, split, **options)


__all__ = [
    "KINDS",
    "DatasetError",
    "FERDataset",
    "Item",
    "Kind",
    "PartialDatasetWarning",
    "SplitNotFoundError",
    "UnreadableImagesError",
    "affectnet",
    "caers",
    "custom",
    "fedro",
    "fer2013",
    "ferplus",
    "load_dataset",
    "merge",
    "rafdb",
    "ran_list",
    "sfew",
]
