"""CAER-S: ``train/`` and ``test/`` with one folder per emotion (``Angry`` or ``Anger``)."""

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

FOLDERS = {
    "angry": 6,
    "anger": 6,
    "disgust": 5,
    "fear": 4,
    "happy": 1,
    "neutral": 0,
    "sad": 2,
    "surprise": 3,
}
EXPECTED = {"train": (48_995,), "test": (20_987,)}
SPLITS = ("train", "test")


def caers(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """CAER-S ``split`` ``"train"`` (48,995) or ``"test"`` (20,987), 7 canonical classes."""
    if split not in SPLITS:
        raise DatasetError(f"CAER-S has the splits {SPLITS}, not {split!r}")
    base = require_dir(root, "CAER-S")
    folder = class_root(base, FOLDERS, [split])
    if folder is None:
        raise DatasetError(f"CAER-S: no {split}/<Emotion>/ folders under {base}")
    items = scan_class_folders(folder, lambda n: FOLDERS.get(n.lower()), base)
    return finish(
        items,
        CLASSES7,
        name="CAER-S",
        split=split,
        expected=EXPECTED[split],
        bad_images=bad_images,
        verify=verify,
    )
