"""Training recipes as data: one frozen record per zoo checkpoint, plus ``finetune``.

The numbers are MA-Net's published schedules (``docs/training.md`` has the table):
SGD momentum 0.9, weight decay 1e-4, lambda 0.6, ``RandomResizedCrop(224)`` + horizontal
flip, no mean/std normalisation, a step learning-rate schedule. Every field can be
overridden (``dataclasses.replace`` in Python, ``--field-name`` on the command line).

Example:
    >>> from manet_zoo.train.recipes import get_recipe
    >>> r = get_recipe("rafdb")
    >>> r.batch_size, r.lr, r.lr_step, r.epochs, r.init
    (128, 0.01, 15, 100, 'manet_msceleb')
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from manet_zoo.errors import UnknownRecipeError


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a training run's result (not the machine it runs on).

    Attributes:
        name: the recipe's name (``rafdb`` ...).
        record: the manifest record it reproduces (``manet_rafdb``), or ``None``.
        description: one line.
        train_data: dataset kinds whose training splits are merged for training.
        test_data: dataset kind of the test set.
        test_split: its split (``test``, ``val`` ...).
        val: ``"holdout"`` (a stratified ``val_fraction`` of the training data, drawn
            with ``val_seed``) or a split name of the first training kind (``val``).
        num_classes: classes of both heads (``None``: from the data).
        init: ``manet_msceleb``/``manet_rafdb``/... (a zoo record), a ``.safetensors``
            path, or ``None`` to train from scratch.
        batch_size: global batch (all processes and accumulation steps together).
        lr, momentum, weight_decay: SGD.
        lr_step, lr_gamma: multiply the learning rate by ``lr_gamma`` every ``lr_step`` epochs.
        epochs: training epochs.
        oversample: class-balanced sampling of the training split (weight 1/count).
        fusion_weight: lambda of the two-branch loss and of the fused logits.
        input_size: training and test input size (square; a multiple of 16).
        rrc_scale: area range of ``RandomResizedCrop``.
        hflip: random horizontal flip.
        face: how faces were cut from photos (recorded in the checkpoint's preprocessing).
        seed: seed of initialisation, sampling order and augmentation.
    """

    name: str
    record: str | None
    description: str
    train_data: tuple[str, ...]
    test_data: str | None
    test_split: str = "test"
    val: str = "holdout"
    val_fraction: float = 0.1
    val_seed: int = 0
    num_classes: int | None = 7
    init: str | None = "manet_msceleb"
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step: int = 15
    lr_gamma: float = 0.1
    epochs: int = 100
    oversample: bool = False
    fusion_weight: float = 0.6
    input_size: int = 224
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    face: str = "aligned"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.input_size < 16 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {self.input_size}")
        if self.batch_size < 1 or self.epochs < 0 or self.lr_step < 1:
            raise ValueError("batch_size and lr_step must be positive and epochs >= 0")
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must lie in [0, 1], got {self.fusion_weight}")
        if self.val == "holdout" and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        values = dict(data)
        for f in dataclasses.fields(cls):
            if isinstance(values.get(f.name), list):
                values[f.name] = tuple(values[f.name])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @property
    def data_kinds(self) -> tuple[str, ...]:
        """Dataset kinds the recipe reads, in the order ``--data`` paths are matched."""
        kinds = list(self.train_data)
        if self.test_data and self.test_data not in kinds:
            kinds.append(self.test_data)
        return tuple(kinds)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="rafdb", record="manet_rafdb", train_data=("rafdb",), test_data="rafdb",
            description="RAF-DB basic, 7 classes, from MS-Celeb-1M (paper: 88.40% test).",
            batch_size=128, lr=0.01, lr_step=15, epochs=100,
        ),
        Recipe(
            name="affectnet7", record="manet_affectnet7", train_data=("affectnet7",),
            test_data="affectnet7", test_split="val", oversample=True, face="box",
            description="AffectNet 7 classes, oversampled, validation as test (paper: 64.53%).",
            batch_size=256, lr=0.01, lr_step=5, epochs=20,
        ),
        Recipe(
            name="affectnet8", record="manet_affectnet8", train_data=("affectnet8",),
            test_data="affectnet8", test_split="val", oversample=True, face="box", num_classes=8,
            description="AffectNet 8 classes, oversampled, validation as test (paper: 60.29%).",
            batch_size=256, lr=0.01, lr_step=5, epochs=20,
        ),
        Recipe(
            name="caers", record="manet_caers", train_data=("caers",), test_data="caers",
            init=None, face="none",
            description="CAER-S, 7 classes, from scratch (paper: 88.42% test).",
            batch_size=128, lr=0.1, lr_step=50, lr_gamma=0.5, epochs=400,
        ),
        Recipe(
            name="sfew", record="manet_sfew", train_data=("sfew",), test_data="sfew",
            test_split="val", init="manet_fer2013", face="box",
            description="SFEW 2.0 full frames, 7 classes, from the FER2013 model "
            "(paper: 59.40% val).",
            batch_size=128, lr=0.001, lr_step=10, epochs=100,
        ),
        Recipe(
            name="fer2013", record="manet_fer2013", train_data=("fer2013",), test_data="fer2013",
            test_split="test", val="val", face="box",
            description="FER2013, 7 classes; PublicTest selects, PrivateTest tests "
            "(schedule not in the paper: RAF-DB's).",
            batch_size=128, lr=0.01, lr_step=15, epochs=100,
        ),
        Recipe(
            name="fedro", record="manet_fedro", train_data=("rafdb", "affectnet7"),
            test_data="fedro", test_split="test",
            description="RAF-DB + AffectNet-7 train together, tested on FED-RO (paper: 70.00%).",
            batch_size=256, lr=0.01, lr_step=5, epochs=20,
        ),
        Recipe(
            name="finetune", record=None, train_data=("custom",), test_data="custom",
            num_classes=None, init="manet_msceleb", oversample=True,
            description="Fine-tune on your own ImageFolder or CSV (test split used when present).",
            batch_size=32, lr=0.005, lr_step=10, epochs=30,
        ),
    )
}  # fmt: skip


def list_recipes() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe ``name``; :class:`UnknownRecipeError` lists the choices."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownRecipeError(f"no recipe {name!r}; known: {', '.join(RECIPES)}") from None
