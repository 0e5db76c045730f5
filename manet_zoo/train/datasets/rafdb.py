"""RAF-DB basic emotions: the owners' label file + aligned images, or the official
MA-Net ImageFolder ``RAF-DB/{train,test}/{0..6}/`` (already in canonical order)."""

from __future__ import annotations

import os
from pathlib import Path

from manet_zoo.train.datasets.base import (
    CLASSES7,
    DatasetError,
    FERDataset,
    Item,
    class_root,
    find_dirs,
    find_file,
    finish,
    read_lines,
    require_dir,
    scan_class_folders,
)

#: RAF-DB's own labels 1..7 (surprise, fear, disgust, happiness, sadness, anger, neutral).
RAF_TO_CANONICAL = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
EXPECTED = {"train": (12_271,), "test": (3_068,)}
LABEL_FILE = "list_patition_label.txt"
SPLITS = ("train", "test")


def rafdb(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    aligned: bool = True,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """RAF-DB basic, ``split`` ``"train"`` (12,271) or ``"test"`` (3,068), 7 canonical classes.

    ``root`` may be the unpacked archive at any depth (``basic/``, ``basic/basic/``, with
    ``__MACOSX/``): the label file is located, not assumed. Without a label file, the
    official MA-Net folder layout ``{train,test}/{0..6}/`` is read instead.
    """
    if split not in SPLITS:
        raise DatasetError(f"RAF-DB has the splits {SPLITS}, not {split!r}")
    base = require_dir(root, "RAF-DB")
    label_file = find_file(base, LABEL_FILE)
    if label_file is None:
        folder = class_root(base, [str(i) for i in range(7)], [split])
        if folder is None:
            raise DatasetError(
                f"RAF-DB: no {LABEL_FILE} and no MA-Net-style {split}/0..6/ folders under {base}"
            )
        return rafdb_folder(folder, split, bad_images=bad_images, verify=verify, key_root=base)
    basic = label_file.parent.parent  # basic/EmoLabel/list_patition_label.txt
    kind = "aligned" if aligned else "original"
    image_dir = basic / "Image" / kind
    if not image_dir.is_dir():
        found = find_dirs(basic, lambda d, _: d.name.lower() == kind)
        if not found:
            raise DatasetError(f"RAF-DB: no Image/{kind}/ folder next to {label_file}")
        image_dir = found[0]
    items = []
    for line in read_lines(label_file):
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(f"{split}_"):
            continue
        name, raw = parts[0], int(parts[1])
        if raw not in RAF_TO_CANONICAL:
            raise DatasetError(f"RAF-DB: label {raw} outside 1..7 in {label_file}: {line!r}")
        stem = Path(name).stem
        file = f"{stem}_aligned.jpg" if aligned else name
        items.append(Item(f"rafdb/{file}", RAF_TO_CANONICAL[raw], str(image_dir / file)))
    return finish(
        items,
        CLASSES7,
        name="RAF-DB",
        split=split,
        expected=EXPECTED[split],
        bad_images=bad_images,
        verify=verify,
    )


def rafdb_folder(
    folder: str | os.PathLike[str],
    split: str,
    *,
    bad_images: str = "fail",
    verify: bool = False,
    key_root: Path | None = None,
) -> FERDataset:
    """The official MA-Net ImageFolder: ``folder/{0..6}/*.jpg`` with 0 neutral ... 6 anger."""
    folder = Path(folder)

    def label_of(name: str) -> int | None:
        return int(name) if name.isdigit() and int(name) < 7 else None

    items = scan_class_folders(folder, label_of, key_root or folder)
    return finish(
        items,
        CLASSES7,
        name="RAF-DB",
        split=split,
        expected=EXPECTED.get(split, ()),
        bad_images=bad_images,
        verify=verify,
    )
