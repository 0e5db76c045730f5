"""SFEW 2.0: ``Train/`` and ``Val/`` full frames, or the aligned-face folders."""

from __future__ import annotations

import os
from pathlib import Path

from manet_zoo.train.datasets.base import (
    CLASSES7,
    DatasetError,
    FERDataset,
    find_dirs,
    finish,
    require_dir,
    scan_class_folders,
)

FOLDERS = {
    "angry": 6,
    "disgust": 5,
    "fear": 4,
    "happy": 1,
    "neutral": 0,
    "sad": 2,
    "surprise": 3,
}
EXPECTED = {
    False: {"train": (958,), "val": (436,)},
    True: {"train": (891,), "val": (431,)},
}
SPLITS = ("train", "val")


def sfew(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    aligned: bool = False,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """SFEW 2.0 ``split`` ``"train"`` or ``"val"`` (the test labels are withheld).

    ``aligned=False``: the full frames ``Train/<Emotion>/`` (958 / 436, what MA-Net used;
    no face crop is applied here). ``aligned=True``: ``Train/Train_Aligned_Faces/<Emotion>/``
    and ``Val/Val_Aligned_Faces_new/Val_Aligned_Faces/<Emotion>/`` (891 / 431).
    """
    if split not in SPLITS:
        raise DatasetError(f"SFEW has the splits {SPLITS}, not {split!r}")
    base = require_dir(root, "SFEW")

    def accept(d: Path, subdirs: list[str]) -> bool:
        if not any(s.lower() in FOLDERS for s in subdirs):
            return False
        parts = [p.lower() for p in (d.relative_to(base).parts if d != base else (d.name,))]
        in_split = any(p == split or p.startswith(f"{split}_") for p in parts)
        is_aligned = any("aligned" in p for p in parts)
        return in_split and is_aligned == aligned

    found = find_dirs(base, accept)
    if not found:
        what = "aligned-face" if aligned else "full-frame"
        raise DatasetError(f"SFEW: no {what} {split.title()}/<Emotion>/ folders under {base}")
    items = scan_class_folders(found[0], lambda n: FOLDERS.get(n.lower()), base)
    return finish(
        items,
        CLASSES7,
        name="SFEW-aligned" if aligned else "SFEW",
        split=split,
        expected=EXPECTED[aligned][split],
        bad_images=bad_images,
        verify=verify,
    )
