"""Training, evaluation and publishing of MA-Net checkpoints (``pip install 'manet-zoo[train]'``).

Reproduce a zoo checkpoint, fine-tune on your own data, evaluate, publish::

    from manet_zoo.train import RunOptions, get_recipe, train
    summary = train(get_recipe("rafdb"), "~/data/RAF-DB", "runs/rafdb", RunOptions(amp="bf16"))

``import manet_zoo`` never imports this subpackage, and this module imports its parts
only when they are first used. See ``docs/training.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KINDS": "datasets",
    "FERDataset": "datasets",
    "load_dataset": "datasets",
    "RunOptions": "engine",
    "TrainingError": "engine",
    "train": "engine",
    "train_seeds": "engine",
    "EvalResult": "evaluate",
    "evaluate_model": "evaluate",
    "run_evaluate": "evaluate",
    "export_run": "publish",
    "publish_run": "publish",
    "RECIPES": "recipes",
    "Recipe": "recipes",
    "get_recipe": "recipes",
    "list_recipes": "recipes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"manet_zoo.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'manet_zoo.train' has no attribute {name!r}")
