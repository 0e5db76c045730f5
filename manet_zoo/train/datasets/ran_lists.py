"""The occlusion and pose test lists of RAN (Wang et al., "Region Attention Networks",
Challenge-condition-FER-dataset): subsets of RAF-DB test and AffectNet validation,
selected by image stem. Lists may have CRLF endings and repeated rows: both are handled.

Point ``root`` at the RAF-DB (or AffectNet) folder; the list is looked up there by its
usual name unless ``list_file`` is given.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from manet_zoo.train.datasets.base import (
    CLASSES7,
    CLASSES8,
    IMAGE_EXTENSIONS,
    DatasetError,
    FERDataset,
    Item,
    _walk,
    dedupe,
    find_file,
    finish,
    read_lines,
    require_dir,
)

#: RAN's RAF-DB labels are RAF-DB's minus one (0 surprise ... 6 neutral).
RAF0_TO_CANONICAL = {0: 3, 1: 4, 2: 5, 3: 1, 4: 2, 5: 6, 6: 0}
LISTS = {
    "rafdb_occlusion": ("rafdb_occlusion_list.txt", (735,)),
    "rafdb_pose30": ("val_raf_db_list.txt", (1_247, 1_248)),
    "rafdb_pose45": ("val_raf_db_list_45.txt", (558,)),
    "affectnet_occlusion": ("occlusion_affectnet_list.txt", (683,)),
    "affectnet_pose30": ("pose_30_affectnet_list.txt", (1_948,)),
    "affectnet_pose45": ("pose_45_affectnet_list.txt", (985,)),
}
_HEX56 = re.compile(r"[0-9a-fA-F]{56}")


def _list_file(kind: str, base: Path, list_file: str | os.PathLike[str] | None) -> Path:
    if list_file is not None:
        path = Path(list_file).expanduser()
        if not path.is_file():
            raise DatasetError(f"{kind}: no list file at {path}")
        return path
    found = find_file(base, LISTS[kind][0])
    if found is None:
        raise DatasetError(
            f"{kind}: no {LISTS[kind][0]} under {base}; pass its path (CLI: --list FILE)"
        )
    return found


def _images_by_stem(base: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for dirpath, _, files in _walk(base):
        for f in files:
            if Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                index.setdefault(Path(f).stem.lower(), dirpath / f)
    return index


def _raf_rows(kind: str, path: Path) -> list[tuple[str, int]]:
    """(stem, RAN label) pairs of a RAF-DB list, in file order, de-duplicated."""
    lines = read_lines(path)
    if kind == "rafdb_occlusion":  # "test_0003_aligned 3 4": name, label, occlusion type
        rows = [(line.split()[0], int(line.split()[1])) for line in lines]
    else:  # "0/test_0004_aligned.jpg" with labels in a parallel file (or inline)
        names = [line.split()[0] for line in lines]
        if all(len(line.split()) >= 2 for line in lines):
            labels = [int(line.split()[1]) for line in lines]
        else:
            label_path = path.with_name(path.name.replace("list", "label"))
            if not label_path.is_file():
                raise DatasetError(f"{kind}: no label file {label_path.name} next to {path}")
            label_lines = read_lines(label_path)
            if label_lines and len(label_lines[0].split()) == 2:  # header "1247 7"
                label_lines = label_lines[1:]
            labels = [int(v.split()[0]) for v in label_lines]
            if len(labels) != len(names):
                raise DatasetError(
                    f"{kind}: {path.name} has {len(names)} rows but {label_path.name} has "
                    f"{len(labels)} labels"
                )
        rows = list(zip((Path(n).stem for n in names), labels, strict=True))
    return dedupe(rows)


def _affectnet_rows(path: Path) -> list[tuple[str, int]]:
    """(56-hex stem, label) from rows like ``val/0/<stem>/``, ``0/<stem>.jpg`` or
    ``7/<stem>/8.jpg``."""
    rows = []
    for line in read_lines(path):
        match = _HEX56.search(line)
        numbers = [p for p in line.strip("/").split("/") if p.isdigit()]
        if match is None or not numbers:
            raise DatasetError(f"{path.name}: cannot read the row {line!r}")
        rows.append((match.group(0).lower(), int(numbers[0])))
    return dedupe(rows)


def ran_list(
    kind: str,
    root: str | os.PathLike[str],
    split: str = "test",
    *,
    list_file: str | os.PathLike[str] | None = None,
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """One of :data:`LISTS`' test subsets, labelled from the list itself."""
    if kind not in LISTS:
        raise DatasetError(f"unknown list {kind!r}; known: {', '.join(LISTS)}")
    if split != "test":
        raise DatasetError(f"{kind} is a test list: it has the split 'test' only")
    base = require_dir(root, kind)
    path = _list_file(kind, base, list_file)
    items: list[Item] = []
    missing: list[str] = []
    if kind.startswith("rafdb"):
        index = _images_by_stem(base)
        for stem, raw in _raf_rows(kind, path):
            if raw not in RAF0_TO_CANONICAL:
                raise DatasetError(f"{path.name}: label {raw} outside 0..6 for {stem}")
            image = index.get(stem.lower()) or index.get(stem.lower().removesuffix("_aligned"))
            if image is None:
                missing.append(stem)
                continue
            items.append(Item(f"{kind}/{stem}", RAF0_TO_CANONICAL[raw], str(image)))
        classes = CLASSES7
    else:
        by_stem = _affectnet_val_items(base)
        for stem, label in _affectnet_rows(path):
            if not 0 <= label <= 7:
                raise DatasetError(f"{path.name}: label {label} outside 0..7 for {stem}")
            found = by_stem.get(stem)
            if found is None:
                missing.append(stem)
                continue
            items.append(Item(f"{kind}/{stem}", label, found.path, found.box))
        classes = CLASSES8
    if missing:
        items += [
            Item(f"{kind}/{m}", 0, str(base / f"<no image with the stem {m}>")) for m in missing
        ]
    return finish(
        items,
        classes,
        name=kind,
        split="test",
        expected=LISTS[kind][1],
        bad_images=bad_images,
        verify=verify,
    )


def _affectnet_val_items(base: Path) -> dict[str, Item]:
    """AffectNet validation images by lower-case stem, with their face boxes when the
    original CSV is there; otherwise every image file found under ``base``."""
    if find_file(base, "validation.csv") is not None:
        from manet_zoo.train.datasets.affectnet import affectnet

        val = affectnet(base, "val", num_classes=8, bad_images="skip")
        return {Path(it.path or "").stem.lower(): it for it in val.items}
    return {s: Item(s, 0, str(p)) for s, p in _images_by_stem(base).items()}
