"""AffectNet, 7 or 8 classes: the original release (CSV file lists + full frames cropped
with the listed face box) and the newer one (``images/`` + ``annotations/*_exp.npy``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from manet_zoo.train.datasets.base import (
    CLASSES7,
    CLASSES8,
    DatasetError,
    FERDataset,
    Item,
    face_box,
    find_dirs,
    find_file,
    finish,
    image_files,
    require_dir,
)

TRAIN_COUNTS = (74_874, 134_415, 25_459, 14_090, 6_378, 3_803, 24_882, 3_750)
EXPECTED = {
    7: {"train": (sum(TRAIN_COUNTS[:7]),), "val": (3_500, 3_499)},
    8: {"train": (sum(TRAIN_COUNTS),), "val": (4_000, 3_999)},
}
CSV_NAMES = {"train": "training.csv", "val": "validation.csv"}
NEW_DIRS = {"train": "train_set", "val": "val_set"}
SPLITS = ("train", "val")
DEFAULT_BOX_MARGIN = 0.1


def affectnet(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    num_classes: int = 7,
    box_margin: float = DEFAULT_BOX_MARGIN,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """AffectNet ``split`` ``"train"`` or ``"val"`` with 7 (expression <= 6) or 8 (<= 7)
    classes; AffectNet's 0-7 coding is the canonical order. Original-release images are
    cropped to the CSV's face box grown by ``box_margin`` per side."""
    if num_classes not in (7, 8):
        raise DatasetError(f"AffectNet has 7 or 8 classes, not {num_classes}")
    if split not in SPLITS:
        raise DatasetError(f"AffectNet has the splits {SPLITS}, not {split!r}")
    base = require_dir(root, "AffectNet")
    csv_file = find_file(base, CSV_NAMES[split])
    if csv_file is not None:
        items = _original(base, csv_file, num_classes, box_margin)
    else:
        items = _new_release(base, split, num_classes)
    return finish(
        items,
        CLASSES7 if num_classes == 7 else CLASSES8,
        name=f"AffectNet-{num_classes}",
        split=split,
        expected=EXPECTED[num_classes][split],
        bad_images=bad_images,
        verify=verify,
    )


def _image_root(base: Path, csv_file: Path) -> Path:
    for cand in find_dirs(base, lambda d, _: d.name.lower() == "manually_annotated_images"):
        return cand
    return csv_file.parent.parent


def _original(base: Path, csv_file: Path, num_classes: int, margin: float) -> list[Item]:
    image_root = _image_root(base, csv_file)
    items = []
    with open(csv_file, newline="", encoding="utf-8-sig") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or (i == 0 and row[0].strip() == "subDirectory_filePath"):
                continue
            if len(row) < 7:
                raise DatasetError(f"AffectNet: {csv_file} row {i + 1} has {len(row)} columns")
            rel, expression = row[0].strip(), int(float(row[6]))
            if expression >= num_classes:  # 7 contempt (7-class), 8 none, 9 uncertain, 10 no-face
                continue
            x, y, w, h = (float(v) for v in row[1:5])
            box = face_box(x, y, w, h, margin) if w > 0 and h > 0 else None
            items.append(Item(f"affectnet/{rel}", expression, str(image_root / rel), box))
    return items


def _new_release(base: Path, split: str, num_classes: int) -> list[Item]:
    import numpy as np

    dirs = find_dirs(
        base,
        lambda d, subs: (
            d.name.lower() == NEW_DIRS[split] and {"images", "annotations"} <= set(subs)
        ),
    )
    if not dirs:
        raise DatasetError(
            f"AffectNet: neither {CSV_NAMES[split]} (original release) nor "
            f"{NEW_DIRS[split]}/images + annotations/ (newer release) under {base}"
        )
    folder = dirs[0]
    items = []
    for image in image_files(folder / "images"):
        exp_file = folder / "annotations" / f"{image.stem}_exp.npy"
        if not exp_file.is_file():
            raise DatasetError(f"AffectNet: {image.name} has no annotations/{exp_file.name}")
        expression = int(str(np.load(exp_file)))
        if expression < num_classes:
            items.append(Item(f"affectnet/{NEW_DIRS[split]}/{image.name}", expression, str(image)))
    return items
