"""FER2013 (``fer2013.csv`` or Kaggle's ``icml_face_data.csv``) and FER+ (majority vote
of ``fer2013new.csv``, row-aligned with ``fer2013.csv``). Parsed here: torchvision's
loader checks the md5 of one particular file."""

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
    find_file,
    finish,
    require_dir,
)

#: FER2013's 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
FER_TO_CANONICAL = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
EXPECTED = {"train": (28_709,), "val": (3_589,), "test": (3_589,)}
SPLITS = tuple(USAGE)
FERPLUS_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)


def _usage(split: str) -> str:
    if split in USAGE:
        return USAGE[split]
    if split in USAGE.values():
        return split
    raise DatasetError(
        f"FER2013 has the splits {SPLITS} (= {tuple(USAGE.values())}), not {split!r}"
    )


def _read_fer_rows(base: Path) -> tuple[Path, list[dict[str, str]]]:
    path = find_file(base, "fer2013.csv", "icml_face_data.csv")
    if path is None:
        raise DatasetError(f"FER2013: no fer2013.csv or icml_face_data.csv under {base}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        if not {"emotion", "pixels", "Usage"} <= set(header):
            raise DatasetError(f"FER2013: {path} has the header {header}")
        rows = [{h: v.strip() for h, v in zip(header, row, strict=False)} for row in reader if row]
    return path, rows


def fer2013(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """FER2013 ``split`` ``"train"`` (Training), ``"val"`` (PublicTest) or ``"test"``
    (PrivateTest), 48x48 grey faces as RGB, 7 canonical classes."""
    usage = _usage(split)
    split = next(k for k, v in USAGE.items() if v == usage)
    path, rows = _read_fer_rows(require_dir(root, "FER2013"))
    items = [
        Item(f"{path.name}:{i}", FER_TO_CANONICAL[int(row["emotion"])], pixels=row["pixels"])
        for i, row in enumerate(rows)
        if row["Usage"] == usage
    ]
    return finish(
        items,
        CLASSES7,
        name="FER2013",
        split=split,
        expected=EXPECTED[split],
        bad_images=bad_images,
        verify=verify,
    )


def majority_label(votes: list[float]) -> int | None:
    """FER+ majority vote over the 10 columns: the canonical index of the single top
    emotion, or ``None`` for a tie or when 'unknown' / 'NF' (not a face) wins."""
    top = max(votes)
    if top <= 0 or votes.count(top) > 1:
        return None
    name = FERPLUS_COLUMNS[votes.index(top)]
    return CLASSES8.index(name) if name in CLASSES8 else None


def ferplus(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """FER+ labels (``fer2013new.csv``, majority vote, 8 canonical classes with contempt)
    on FER2013's pixels. Rows with an empty image name, a tie, or an 'unknown'/'NF'
    majority are dropped."""
    usage = _usage(split)
    split = next(k for k, v in USAGE.items() if v == usage)
    base = require_dir(root, "FER+")
    new = find_file(base, "fer2013new.csv")
    if new is None:
        raise DatasetError(f"FER+: no fer2013new.csv under {base}")
    path, pixel_rows = _read_fer_rows(base)
    with open(new, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        rows = [row for row in reader if row]
    if len(rows) != len(pixel_rows):
        raise DatasetError(
            f"FER+: {new} has {len(rows)} rows but {path} has {len(pixel_rows)}; "
            "they must be row-aligned"
        )
    col = {h: i for i, h in enumerate(header)}
    missing = [c for c in ("Usage", "Image name", *FERPLUS_COLUMNS) if c not in col]
    if missing:
        raise DatasetError(f"FER+: {new} lacks the columns {missing}")
    items = []
    for i, row in enumerate(rows):
        if row[col["Usage"]].strip() != usage or not row[col["Image name"]].strip():
            continue
        label = majority_label([float(row[col[c]] or 0) for c in FERPLUS_COLUMNS])
        if label is not None:
            items.append(
                Item(
                    f"ferplus:{row[col['Image name']].strip()}",
                    label,
                    pixels=pixel_rows[i]["pixels"],
                )
            )
    return finish(items, CLASSES8, name="FER+", split=split, bad_images=bad_images, verify=verify)
