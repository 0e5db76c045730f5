"""Your own data: an ImageFolder or a CSV of ``path,label[,split]``.

* Folder: ``ROOT/<class>/*.jpg`` (everything is training data), or
  ``ROOT/{train,val,test}/<class>/*.jpg`` (``valid``/``validation`` also work for val).
* CSV: rows ``path,label`` or ``path,label,split``, with or without a header row;
  relative paths are relative to the CSV's folder.

Class names are sorted alphabetically, unless every name is (a synonym of) one of the
canonical expressions (``happy``, ``Angry``, ``neutral`` ...): then they become the
canonical names in the canonical order, so the model's labels match the zoo's.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from manet_zoo.train.datasets.base import (
    DatasetError,
    FERDataset,
    Item,
    SplitNotFoundError,
    finish,
    image_files,
    require_dir,
)
from manet_zoo.weights import CANONICAL_LABELS

SPLIT_DIRS = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
SYNONYMS = {
    "neutral": "neutral",
    "neural": "neutral",
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "sadness": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "anger": "anger",
    "angry": "anger",
    "contempt": "contempt",
}
_HEADER_CELLS = {"path", "file", "filename", "image", "image_path", "filepath"}


def canonical_name(name: str) -> str | None:
    """The canonical expression a class name means, or ``None``."""
    return SYNONYMS.get(name.strip().lower())


def class_order(names: Sequence[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    """(ordered class names, raw name -> index) for the raw names found in the data."""
    unique = sorted(set(names))
    canon = {n: canonical_name(n) for n in unique}
    mapped = set(canon.values())
    if None not in mapped and len(mapped) == len(unique):
        classes = tuple(c for c in CANONICAL_LABELS if c in mapped)
        return classes, {n: classes.index(c) for n, c in canon.items() if c is not None}
    return tuple(unique), {n: i for i, n in enumerate(unique)}


def _folder_entries(base: Path) -> list[tuple[str, str, Path]]:
    """(split, class name, path) of every image in an ImageFolder, with or without splits."""
    subdirs = {p.name.lower(): p for p in base.iterdir() if p.is_dir()}
    split_dirs = {
        split: subdirs[n] for split, names in SPLIT_DIRS.items() for n in names if n in subdirs
    }
    roots = split_dirs if "train" in split_dirs or "test" in split_dirs else {"train": base}
    entries = []
    for split, folder in roots.items():
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name.lower() == "__macosx":
                continue
            entries += [(split, sub.name, f) for f in image_files(sub)]
    return entries


def _csv_entries(path: Path) -> list[tuple[str, str, Path]]:
    entries = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for i, row in enumerate(csv.reader(f)):
            row = [c.strip() for c in row]
            if not row or not any(row):
                continue
            if i == 0 and row[0].lower() in _HEADER_CELLS:
                continue
            if len(row) < 2:
                raise DatasetError(f"{path} row {i + 1}: expected path,label[,split], got {row}")
            split = row[2].lower() if len(row) > 2 and row[2] else "train"
            split = next((s for s, names in SPLIT_DIRS.items() if split in names), split)
            file = Path(row[0]).expanduser()
            entries.append((split, row[1], file if file.is_absolute() else path.parent / file))
    return entries


def custom(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    classes: Sequence[str] | None = None,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """A split of your own data (see the module docstring).

    Args:
        classes: the label order to use (e.g. a model's labels when evaluating it);
            default: derived from all class names in the data, see :func:`class_order`.

    Raises:
        SplitNotFoundError: the data has no such split (a plain folder is all ``train``).
    """
    base = require_dir(root, "custom data")
    entries = _csv_entries(base) if base.is_file() else _folder_entries(base)
    if not entries:
        raise DatasetError(f"no labelled images found in {base}")
    if classes is None:
        order, index = class_order([name for _, name, _ in entries])
    else:
        order = tuple(classes)
        index = {}
        for _, name, _ in entries:
            if name in order:
                index[name] = order.index(name)
            elif canonical_name(name) in order:
                index[name] = order.index(canonical_name(name) or "")
        unknown = sorted({n for _, n, _ in entries} - set(index))
        if unknown:
            raise DatasetError(f"{base}: classes {unknown} are not among {list(order)}")
    chosen = [(name, path) for s, name, path in entries if s == split]
    if not chosen:
        have = sorted({s for s, _, _ in entries})
        raise SplitNotFoundError(f"{base} has no {split!r} split (it has {have})")
    key_root = base.parent if base.is_file() else base
    items = []
    for name, path in chosen:
        try:
            key = path.relative_to(key_root).as_posix()
        except ValueError:
            key = str(path)
        items.append(Item(key, index[name], str(path)))
    return finish(items, order, name=base.name, split=split, bad_images=bad_images, verify=verify)
