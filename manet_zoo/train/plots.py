"""Loss/accuracy curves and confusion matrices as PNG (matplotlib, imported lazily;
without it the plots are skipped with a warning)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: no PNG plots (pip install 'manet-zoo[train]')",
            stacklevel=3,
        )
        return None
    return plt


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Training loss and train/val/test accuracy per epoch."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    for key, name in (("train_acc", "train"), ("val_acc", "val"), ("test_acc", "test")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax_acc.plot(epochs, values, marker="o", label=name)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(result: Any, path: Path) -> Path | None:
    """Row-normalised confusion matrix of an :class:`~manet_zoo.train.evaluate.EvalResult`."""
    plt = _pyplot()
    if plt is None:
        return None
    import numpy as np

    counts = np.array(result.confusion, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(result.labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.8 * n))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), result.labels, rotation=45, ha="right")
    ax.set_yticks(range(n), result.labels)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(f"{result.dataset}: {result.accuracy:.2f}%")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=8)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
