"""FED-RO (facial expressions with real occlusions): ``<class>/occ_img_<N>.jpg``, 400 images."""

from __future__ import annotations

import os

from manet_zoo.train.datasets.base import (
    CLASSES7,
    DatasetError,
    FERDataset,
    class_root,
    finish,
    require_dir,
    scan_class_folders,
)

#: The archive spells neutral "neural".
FOLDERS = {
    "anger": 6,
    "disgust": 5,
    "fear": 4,
    "happy": 1,
    "neural": 0,
    "neutral": 0,
    "sad": 2,
    "surprise": 3,
}
EXPECTED = {"test": (400,)}


def fedro(
    root: str | os.PathLike[str],
    split: str = "test",
    *,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """FED-RO, a test set only (``split="test"``), 7 canonical classes."""
    if split != "test":
        raise DatasetError(f"FED-RO is a test set: it has the split 'test' only, not {split!r}")
    base = require_dir(root, "FED-RO")
    folder = class_root(base, FOLDERS)
    if folder is None:
        raise DatasetError(f"FED-RO: no anger/ ... neural/ ... folders under {base}")
    items = scan_class_folders(folder, lambda n: FOLDERS.get(n.lower()), base)
    return finish(
        items, CLASSES7, name="FED-RO", split=split, expected=EXPECTED["test"],
        bad_images=bad_images, verify=verify,
    )  # fmt: skip
