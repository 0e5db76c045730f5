"""Evaluation: overall accuracy, mean class accuracy, per-class accuracy, confusion matrix.

Dataset labels are matched to the model's labels **by name** (a 7-class model on an
8-class list drops the contempt images and says how many), so a model trained on any
dataset can be scored on any other.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from manet_zoo.train.datasets.base import DatasetError, FERDataset, Item
from manet_zoo.train.distributed import DistContext
from manet_zoo.train.sampling import EvalTransform, collate_skipping


@dataclass(frozen=True)
class EvalResult:
    """Scores from a confusion matrix (rows: true class, columns: predicted)."""

    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    dataset: str = ""
    dropped: int = 0

    @property
    def total(self) -> int:
        return sum(map(sum, self.confusion))

    @property
    def correct(self) -> int:
        return sum(self.confusion[i][i] for i in range(len(self.labels)))

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total if self.total else float("nan")

    @property
    def per_class(self) -> dict[str, float | None]:
        """Recall of each class in percent (``None`` for a class without test images)."""
        out: dict[str, float | None] = {}
        for i, name in enumerate(self.labels):
            support = sum(self.confusion[i])
            out[name] = 100.0 * self.confusion[i][i] / support if support else None
        return out

    @property
    def mean_class_accuracy(self) -> float:
        values = [v for v in self.per_class.values() if v is not None]
        return sum(values) / len(values) if values else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "total": self.total,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "mean_class_accuracy": round(self.mean_class_accuracy, 4),
            "per_class_accuracy": {
                k: (round(v, 4) if v is not None else None) for k, v in self.per_class.items()
            },
            "labels": list(self.labels),
            "confusion": [list(r) for r in self.confusion],
            "dropped": self.dropped,
        }

    def format(self) -> str:
        lines = [
            f"{self.dataset}: {self.total} images",
            f"  accuracy            {self.accuracy:6.2f}%  ({self.correct}/{self.total})",
            f"  mean class accuracy {self.mean_class_accuracy:6.2f}%",
        ]
        for name, acc in self.per_class.items():
            support = sum(self.confusion[self.labels.index(name)])
            shown = f"{acc:6.2f}%" if acc is not None else "   n/a "
            lines.append(f"    {name:<10} {shown}  (n={support})")
        if self.dropped:
            lines.append(f"  ({self.dropped} images of classes the model lacks were left out)")
        return "\n".join(lines)


def align_labels(dataset: FERDataset, labels: Sequence[str] | None) -> tuple[FERDataset, int]:
    """``dataset`` relabelled into the index space of ``labels`` (by class name), and the
    number of images dropped because their class is not among ``labels``."""
    if labels is None or tuple(labels) == dataset.classes:
        return dataset, 0
    target = {name: i for i, name in enumerate(labels)}
    common = [c for c in dataset.classes if c in target]
    if not common:
        raise DatasetError(
            f"{dataset.name} has the classes {dataset.classes}, none of which the model "
            f"predicts ({tuple(labels)})"
        )
    items = [
        Item(it.key, target[dataset.classes[it.label]], it.path, it.box, it.pixels)
        for it in dataset.items
        if dataset.classes[it.label] in target
    ]
    dropped = len(dataset) - len(items)
    if dropped:
        missing = [c for c in dataset.classes if c not in target]
        warnings.warn(
            f"{dataset.name}: left out {dropped} images of {missing}, which the model lacks",
            stacklevel=2,
        )
    return dataset.replace(items=items, classes=tuple(labels)), dropped


@torch.no_grad()
def confusion_matrix(
    model: nn.Module,
    dataset: FERDataset,
    num_classes: int,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    ctx: DistContext | None = None,
) -> torch.Tensor:
    """``num_classes`` x ``num_classes`` counts of (true, predicted) on ``dataset`` (which
    must already carry its test transform), from the fused logits. With ``ctx`` each rank
    scores its share and the matrices are summed."""
    device = torch.device(device)
    rank, world = (ctx.rank, ctx.world_size) if ctx else (0, 1)
    indices = list(range(rank, len(dataset), world))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=device.type == "cuda",
    )
    was_training = model.training
    model.eval()
    counts = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    for images, labels, _ in loader:
        if not len(labels):
            continue
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device)
        with torch.autocast(
            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        ):
            predicted = model(images).argmax(dim=1)
        counts += torch.bincount(labels * num_classes + predicted, minlength=num_classes**2)
    model.train(was_training)
    counts = counts.cpu()
    if ctx is not None:
        counts = ctx.all_reduce(counts)
    return counts.view(num_classes, num_classes)


def evaluate_model(
    model: nn.Module,
    dataset: FERDataset,
    *,
    labels: Sequence[str] | None = None,
    preprocessing: Any = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    workers: int = 0,
) -> EvalResult:
    """Score ``model`` (an MA-Net) on ``dataset`` with the model's preprocessing."""
    labels = tuple(labels or getattr(model, "labels", None) or dataset.classes)
    num_classes = getattr(model, "num_classes", len(labels))
    if len(labels) != num_classes:
        raise DatasetError(f"{len(labels)} labels for a {num_classes}-class model")
    aligned, dropped = align_labels(dataset, labels)
    preprocessing = preprocessing or model.preprocessing
    aligned = aligned.with_transform(EvalTransform(preprocessing))
    model = model.to(device)
    matrix = confusion_matrix(
        model, aligned, num_classes, batch_size=batch_size, device=device, workers=workers
    )
    return EvalResult(
        labels=labels,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix.tolist()),
        dataset=f"{dataset.name} {dataset.split}",
        dropped=dropped,
    )


def write_result(result: EvalResult, out: str | os.PathLike[str], stem: str = "eval") -> list[Path]:
    """``<stem>.json`` and ``<stem>_confusion.png`` (when matplotlib is there) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{stem}.json"]
    written[0].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    from manet_zoo.train.plots import plot_confusion

    png = plot_confusion(result, out / f"{stem}_confusion.png")
    if png is not None:
        written.append(png)
    return written


def run_evaluate(
    *,
    kind: str,
    data: str | os.PathLike[str],
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    split: str | None = None,
    list_file: str | None = None,
    input_size: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
    workers: int = 0,
    bad_images: str = "fail",
    out: str | os.PathLike[str] | None = None,
) -> EvalResult:
    """Load a model (zoo name / ``hf-hub:`` spec, or a weights file) and score it on a
    dataset split (default: the kind's last split, i.e. its test set)."""
    import dataclasses

    from manet_zoo.factories import load, manet
    from manet_zoo.train.datasets import KINDS, load_dataset
    from manet_zoo.train.distributed import resolve_device

    if (model is None) == (weights is None):
        raise ValueError("give exactly one of model (a zoo name) or weights (a file)")
    net = load(model) if model is not None else manet(weights=weights)
    options: dict[str, Any] = {"bad_images": bad_images}
    if list_file is not None:
        options["list_file"] = list_file
    if kind == "custom" and net.labels is not None:
        options["classes"] = net.labels
    split = split or (KINDS[kind].splits[-1] if kind in KINDS else "test")
    dataset = load_dataset(kind, data, split, **options)
    preprocessing = net.preprocessing
    if input_size is not None:
        preprocessing = dataclasses.replace(preprocessing, input_size=(input_size, input_size))
    result = evaluate_model(
        net,
        dataset,
        preprocessing=preprocessing,
        batch_size=batch_size,
        device=resolve_device(device),
        workers=workers,
    )
    if out is not None:
        write_result(result, out, stem=f"eval_{kind}_{split}")
    return result
