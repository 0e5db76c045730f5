"""The weights manifest: which checkpoints exist and what travels with each.

``weights_manifest.json`` (packaged inside ``manet_zoo/``; ``MANET_ZOO_MANIFEST``
points elsewhere) holds one record per checkpoint. :class:`Weights` is the typed
view of a record; the schema is enforced by :meth:`Weights.from_dict`, so a record
that breaks it fails loudly the first time the manifest is read. ``docs/weights.md``
documents every field.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manet_zoo import config
from manet_zoo.errors import ManifestError, UnknownModelError
from manet_zoo.preprocessing import Preprocessing

SCHEMA_VERSION = 1
CANONICAL_LABELS = (
    "neutral",
    "happiness",
    "sadness",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)
TASKS = ("expression", "identity")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def manifest_path() -> Path:
    """The manifest in use: ``MANET_ZOO_MANIFEST`` if set, else the packaged one."""
    return config.manifest_override() or Path(__file__).with_name("weights_manifest.json")


@dataclass(frozen=True)
class WeightsFile:
    """Where a published checkpoint lives and how to recognise it."""

    filename: str
    repo_id: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None

    @property
    def complete(self) -> bool:
        return None not in (self.repo_id, self.revision, self.sha256, self.size)


@dataclass(frozen=True)
class PaperResult:
    """A number as the paper reports it (labelled as the paper's, not measured here)."""

    top1: float
    correct: int | None = None
    total: int | None = None
    test_set: str = ""


@dataclass(frozen=True)
class Weights:
    """One checkpoint's record: architecture, labels, preprocessing, provenance, file.

    Example:
        >>> from manet_zoo import get_weights
        >>> w = get_weights("manet_rafdb")
        >>> w.labels[:3], w.num_classes, w.published
        (('neutral', 'happiness', 'sadness'), 7, False)
    """

    name: str
    description: str
    task: str
    num_classes: int
    fusion_weight: float
    labels: tuple[str, ...] | None
    preprocessing: Preprocessing
    dataset: str
    protocol: str
    recipe: str
    init: str | None
    published: bool
    file: WeightsFile
    license: str
    paper: PaperResult | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def sha256(self) -> str | None:
        return self.file.sha256

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    def transforms(self):  # -> torchvision.transforms.Compose
        """PIL face image -> model input tensor, as this checkpoint was trained."""
        return self.preprocessing.transforms()

    @property
    def meta(self) -> dict[str, Any]:
        """Everything descriptive, torchvision-style: categories, dataset, metrics, size."""
        return {
            "categories": list(self.labels) if self.labels else None,
            "task": self.task,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "recipe": self.recipe,
            "init": self.init,
            "paper": dataclasses.asdict(self.paper) if self.paper else None,
            "metrics": dict(self.metrics),
            "num_params": num_params(self.num_classes),
            "license": self.license,
            "file_size": self.file.size,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> Weights:
        """Parse and validate one manifest record; raises :class:`ManifestError`."""
        try:
            return _parse_record(name, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest record {name!r} is invalid: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The record as it is written in the manifest."""
        return {
            "description": self.description,
            "task": self.task,
            "architecture": {"num_classes": self.num_classes, "fusion_weight": self.fusion_weight},
            "labels": list(self.labels) if self.labels is not None else None,
            "preprocessing": self.preprocessing.to_dict(),
            "dataset": self.dataset,
            "protocol": self.protocol,
            "recipe": self.recipe,
            "init": self.init,
            "paper": dataclasses.asdict(self.paper) if self.paper else None,
            "metrics": dict(self.metrics),
            "license": self.license,
            "source": self.source,
            "published": self.published,
            "file": dataclasses.asdict(self.file),
        }


_RECORD_FIELDS = {
    "description",
    "task",
    "architecture",
    "labels",
    "preprocessing",
    "dataset",
    "protocol",
    "recipe",
    "init",
    "paper",
    "metrics",
    "license",
    "source",
    "published",
    "file",
}


def _parse_record(name: str, data: Mapping[str, Any]) -> Weights:
    unknown = set(data) - _RECORD_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    arch = data["architecture"]
    num_classes = int(arch["num_classes"])
    task = data["task"]
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    labels = data["labels"]
    if labels is None:
        if task == "expression":
            raise ValueError("an expression model needs its ordered label list")
    else:
        labels = tuple(labels)
        if len(labels) != num_classes:
            raise ValueError(f"{len(labels)} labels for {num_classes} classes")
        if task == "expression" and not set(labels) <= set(CANONICAL_LABELS):
            raise ValueError(f"labels outside the canonical vocabulary: {labels}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate labels: {labels}")
    file = WeightsFile(**data["file"])
    published = data["published"]
    if not isinstance(published, bool):
        raise ValueError("published must be true or false")
    if not file.filename.endswith(".safetensors"):
        raise ValueError(f"file.filename must be a .safetensors file, got {file.filename!r}")
    if published:
        if not file.complete:
            raise ValueError("a published record needs repo_id, revision, sha256 and size")
        if not _REPO_ID.match(file.repo_id or ""):
            raise ValueError(f"file.repo_id must look like 'org/name', got {file.repo_id!r}")
        if not _COMMIT.match(file.revision or ""):
            raise ValueError("file.revision must be a 40-hex commit hash, not a branch or tag")
        if not _SHA256.match(file.sha256 or ""):
            raise ValueError("file.sha256 must be 64 lowercase hex digits")
        if not isinstance(file.size, int) or file.size <= 0:
            raise ValueError("file.size must be a positive number of bytes")
    elif file.sha256 is not None:
        raise ValueError("an unpublished record carries no sha256 (never invent a hash)")
    paper = PaperResult(**data["paper"]) if data.get("paper") else None
    metrics = data.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ValueError("metrics must be an object")
    return Weights(
        name=name,
        description=data["description"],
        task=task,
        num_classes=num_classes,
        fusion_weight=float(arch["fusion_weight"]),
        labels=labels,
        preprocessing=Preprocessing.from_dict(data["preprocessing"]),
        dataset=data["dataset"],
        protocol=data["protocol"],
        recipe=data["recipe"],
        init=data.get("init"),
        published=published,
        file=file,
        license=data["license"],
        paper=paper,
        metrics=metrics,
        source=data.get("source", ""),
    )


def num_params(num_classes: int) -> int:
    """Parameters of MA-Net with ``num_classes`` classes (two heads of 512 x C + C)."""
    return 50_540_032 + 2 * (512 * num_classes + num_classes)


def read_manifest(path: Path | None = None) -> dict[str, Weights]:
    """Every record of a manifest, validated. Reads the file on each call (it is small),
    so a changed ``MANET_ZOO_MANIFEST`` takes effect at once."""
    path = path or manifest_path()
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"no weights manifest at {path} (check MANET_ZOO_MANIFEST)") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from exc
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(
            f"{path} has schema_version {raw.get('schema_version')!r}; this manet-zoo reads "
            f"version {SCHEMA_VERSION}. Upgrade manet-zoo or fix the manifest."
        )
    models = raw.get("models")
    if not isinstance(models, dict):
        raise ManifestError(f"{path} has no 'models' object")
    return {name: Weights.from_dict(name, record) for name, record in models.items()}


def list_models(pretrained: bool | None = None) -> list[str]:
    """Names of the zoo's models.

    Args:
        pretrained: ``None`` for all, ``True`` for those whose weights are published,
            ``False`` for those still waiting for theirs.

    Example:
        >>> from manet_zoo import list_models
        >>> "manet_rafdb" in list_models()
        True
    """
    records = read_manifest()
    return sorted(n for n, w in records.items() if pretrained is None or w.published == pretrained)


def get_weights(name: str) -> Weights:
    """The typed record of one checkpoint; :class:`UnknownModelError` names the choices."""
    records = read_manifest()
    if name not in records:
        import difflib

        close = difflib.get_close_matches(name, records, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"no model named {name!r} in {manifest_path()}.{hint} "
            f"Known: {', '.join(sorted(records))}."
        )
    return records[name]
