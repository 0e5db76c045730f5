"""What every dataset loader shares: the :class:`FERDataset` container, typed errors,
file finding that survives nested archives, split-size checks and bad-image policy.

A dataset is a list of self-contained :class:`Item` s (where the pixels are, the
canonical label, a face box if any) plus the ordered class names its labels index.
Loaders only parse their owner's layout into items; loading pixels, cropping and
transforms happen here, identically for every dataset.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

# The errors live in manet_zoo.errors; re-exported here for the dataset modules.
from manet_zoo.errors import DatasetError as DatasetError
from manet_zoo.errors import PartialDatasetWarning as PartialDatasetWarning
from manet_zoo.errors import SplitNotFoundError as SplitNotFoundError
from manet_zoo.errors import UnreadableImagesError as UnreadableImagesError
from manet_zoo.weights import CANONICAL_LABELS

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
BAD_IMAGE_POLICIES = ("fail", "skip")
CLASSES7 = CANONICAL_LABELS[:7]
CLASSES8 = CANONICAL_LABELS[:8]
_JUNK_DIRS = {"__macosx", ".ds_store", ".git"}


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled image.

    Attributes:
        key: a stable identifier (relative path or ``file:row``) written to split lists.
        label: index into the dataset's ``classes``.
        path: image file, or ``None`` when the pixels are inline.
        box: face box ``(left, top, right, bottom)`` in pixels, margin included, or ``None``.
        pixels: FER2013-style 48x48 grey pixels as space-separated text, or ``None``.
    """

    key: str
    label: int
    path: str | None = None
    box: tuple[float, float, float, float] | None = None
    pixels: str | None = None

    def load(self) -> Any:  # -> PIL.Image.Image (RGB)
        from PIL import Image

        if self.pixels is not None:
            import numpy as np

            values = np.array(self.pixels.split(), dtype=np.uint8)
            side = round(len(values) ** 0.5)
            if side * side != len(values):
                raise ValueError(f"{self.key}: {len(values)} pixels is not a square image")
            return Image.fromarray(values.reshape(side, side), mode="L").convert("RGB")
        if self.path is None:
            raise ValueError(f"{self.key} has neither a path nor pixels")
        with Image.open(self.path) as image:
            image = image.convert("RGB")
        if self.box is not None:
            left, top, right, bottom = self.box
            w, h = image.size
            box = (max(0, int(left)), max(0, int(top)), min(w, int(right)), min(h, int(bottom)))
            if box[2] > box[0] and box[3] > box[1]:
                image = image.crop(box)
        return image


def face_box(
    x: float, y: float, width: float, height: float, margin: float
) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` of a face box grown by ``margin`` of its size per side."""
    dx, dy = width * margin, height * margin
    return (x - dx, y - dy, x + width + dx, y + height + dy)


def _bad_image_policy(value: str) -> str:
    if value not in BAD_IMAGE_POLICIES:
        raise ValueError(f"bad_images must be one of {BAD_IMAGE_POLICIES}, got {value!r}")
    return value


class FERDataset(Dataset):
    """Labelled face images of one split of one (or several merged) datasets.

    ``dataset[i]`` gives ``(image, label)``; ``dataset[(i, seed)]`` passes ``seed`` to the
    transform, so that training augmentation is a pure function of the sample's position
    (exact resume, and the same augmentation whatever the number of processes).
    With ``bad_images="skip"`` an image that fails to decode gives ``None`` (the training
    collate function drops and counts it); with ``"fail"`` it raises
    :class:`UnreadableImagesError`.
    """

    def __init__(
        self,
        items: Sequence[Item],
        classes: Sequence[str],
        *,
        name: str,
        split: str,
        transform: Callable[[Any, int | None], Any] | None = None,
        bad_images: str = "fail",
        skipped: Sequence[str] = (),
    ) -> None:
        self.items = list(items)
        self.classes = tuple(classes)
        self.name, self.split = name, split
        self.transform = transform
        self.bad_images = _bad_image_policy(bad_images)
        self.skipped = list(skipped)
        bad = [it.key for it in self.items if not 0 <= it.label < len(self.classes)]
        if bad:
            raise DatasetError(f"{name} {split}: labels outside 0..{len(classes) - 1}: {bad[:5]}")

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"FERDataset({self.name!r}, split={self.split!r}, {len(self)} images, {self.classes})"
        )

    @property
    def targets(self) -> list[int]:
        return [it.label for it in self.items]

    @property
    def keys(self) -> list[str]:
        return [it.key for it in self.items]

    def class_counts(self) -> list[int]:
        counts = Counter(self.targets)
        return [counts.get(i, 0) for i in range(len(self.classes))]

    def subset(self, indices: Iterable[int], split: str | None = None) -> FERDataset:
        return self.replace(items=[self.items[i] for i in indices], split=split or self.split)

    def replace(self, **changes: Any) -> FERDataset:
        args = {
            "items": self.items,
            "classes": self.classes,
            "name": self.name,
            "split": self.split,
            "transform": self.transform,
            "bad_images": self.bad_images,
            "skipped": self.skipped,
        }
        args.update(changes)
        return FERDataset(args.pop("items"), args.pop("classes"), **args)

    def with_transform(self, transform: Callable[[Any, int | None], Any] | None) -> FERDataset:
        return self.replace(transform=transform)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[Any, int] | None:
        seed = None
        if isinstance(index, tuple):
            index, seed = index
        item = self.items[index]
        try:
            image = item.load()
        except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
            if self.bad_images == "skip":
                return None
            raise UnreadableImagesError(
                f"{self.name} {self.split}: cannot read an image ({exc}):", [item.path or item.key]
            ) from exc
        if self.transform is not None:
            image = self.transform(image, seed)
        return image, item.label


def merge(datasets: Sequence[FERDataset], name: str | None = None) -> FERDataset:
    """Several datasets with the same classes as one (e.g. RAF-DB + AffectNet-7 train)."""
    first = datasets[0]
    for other in datasets[1:]:
        if other.classes != first.classes:
            raise DatasetError(
                f"cannot merge {first.name} ({first.classes}) with {other.name} ({other.classes})"
            )
    items = [
        Item(f"{d.name}/{it.key}", it.label, it.path, it.box, it.pixels)
        for d in datasets
        for it in d.items
    ]
    return first.replace(
        items=items,
        name=name or "+".join(d.name for d in datasets),
        skipped=[s for d in datasets for s in d.skipped],
    )


def finish(
    items: list[Item],
    classes: Sequence[str],
    *,
    name: str,
    split: str,
    expected: Sequence[int] = (),
    bad_images: str = "fail",
    verify: bool = False,
) -> FERDataset:
    """Check files (missing, or undecodable when ``verify``), apply the bad-image policy,
    warn on an undocumented split size, and build the dataset."""
    bad_images = _bad_image_policy(bad_images)
    bad = [it for it in items if it.path is not None and not os.path.isfile(it.path)]
    if verify:
        bad_set = {id(b) for b in bad}
        bad += [it for it in items if id(it) not in bad_set and not _decodes(it)]
    skipped: list[str] = []
    if bad:
        paths = [it.path or it.key for it in bad]
        if bad_images == "fail":
            raise UnreadableImagesError(
                f"{name} {split}: {len(bad)} of {len(items)} images are missing or unreadable:",
                paths,
            )
        dropped = {id(b) for b in bad}
        items = [it for it in items if id(it) not in dropped]
        skipped = paths
        warnings.warn(
            f"{name} {split}: skipped {len(bad)} missing or unreadable images (first: {paths[0]})",
            stacklevel=3,
        )
    if not items:
        raise DatasetError(f"{name} {split}: no images found")
    check_size(name, split, len(items) + len(skipped), expected)
    return FERDataset(
        items, classes, name=name, split=split, bad_images=bad_images, skipped=skipped
    )


def _decodes(item: Item) -> bool:
    try:
        item.load()
    except (OSError, ValueError):
        return False
    return True


def check_size(name: str, split: str, found: int, expected: Sequence[int]) -> None:
    """Warn (never fail) when a split's size is not one its owner documents."""
    if expected and found not in expected:
        documented = " or ".join(f"{n:,}" for n in expected)
        warnings.warn(
            f"{name} {split}: found {found:,} images but the documented split has "
            f"{documented}. A partial or modified copy? Continuing with what is there.",
            PartialDatasetWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------- finding files


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """os.walk, breadth-first per level, sorted, without macOS/Git junk."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d.lower() not in _JUNK_DIRS)
        files = sorted(f for f in filenames if not f.startswith("._"))
        yield Path(dirpath), dirnames, files


def require_dir(root: str | os.PathLike[str], name: str) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{name}: {path} does not exist")
    return path


def find_file(root: Path, *names: str) -> Path | None:
    """The shallowest file called one of ``names`` (case-insensitive) under ``root``."""
    if root.is_file():
        return root if root.name.lower() in {n.lower() for n in names} else None
    wanted = {n.lower() for n in names}
    best: Path | None = None
    for dirpath, _, files in _walk(root):
        for f in files:
            if f.lower() in wanted:
                cand = dirpath / f
                if best is None or len(cand.parts) < len(best.parts):
                    best = cand
    return best


def find_dirs(root: Path, accept: Callable[[Path, list[str]], bool]) -> list[Path]:
    """Directories under ``root`` (itself included) for which ``accept(dir, subdirs)``,
    shallowest first."""
    found = [d for d, subdirs, _ in _walk(root) if accept(d, subdirs)]
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def class_root(
    root: Path, class_names: Iterable[str], split_names: Iterable[str] = ()
) -> Path | None:
    """The shallowest folder holding at least one of ``class_names`` as a subfolder, whose
    own name (or that of an ancestor below ``root``) is one of ``split_names`` when given."""
    classes = {c.lower() for c in class_names}
    splits = {s.lower() for s in split_names}

    def accept(d: Path, subdirs: list[str]) -> bool:
        if not any(s.lower() in classes for s in subdirs):
            return False
        if not splits:
            return True
        rel = d.relative_to(root).parts if d != root else (d.name,)
        return any(p.lower() in splits for p in rel)

    found = find_dirs(root, accept)
    return found[0] if found else None


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted, without macOS resource forks."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("._")
    )


def scan_class_folders(
    folder: Path, label_of: Callable[[str], int | None], key_root: Path
) -> list[Item]:
    """Items from ``folder/<class>/*.jpg``; ``label_of(folder name)`` gives the label or
    ``None`` to ignore that folder."""
    items = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = label_of(sub.name)
        if label is None:
            continue
        for f in image_files(sub):
            items.append(Item(f.relative_to(key_root).as_posix(), label, str(f)))
    return items


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines (CRLF or LF, BOM tolerated)."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def dedupe(values: Iterable[Any]) -> list[Any]:
    """Values in first-seen order without repeats."""
    return list(dict.fromkeys(values))
