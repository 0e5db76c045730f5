"""Command-line arguments of ``manet-zoo train``, ``evaluate`` and ``publish``.

Every :class:`~manet_zoo.train.recipes.Recipe` field gets a ``--field-name`` override
(:data:`RECIPE_OVERRIDES`, checked against the dataclass by the tests). Kept light:
nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from manet_zoo.train.recipes import Recipe, get_recipe, list_recipes


def _optional_str(text: str) -> str | None:
    return None if text.lower() in {"none", "null", "scratch"} else text


def _optional_int(text: str) -> int | None:
    return None if text.lower() in {"none", "auto"} else int(text)


def _kinds(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _pair(text: str) -> tuple[float, float]:
    low, high = (float(v) for v in text.split(","))
    return low, high


#: Recipe field -> (argument type, help). Booleans become --x / --no-x.
RECIPE_OVERRIDES: dict[str, tuple[Callable[[str], Any] | type, str]] = {
    "train_data": (_kinds, "training dataset kinds, comma-separated"),
    "test_data": (_optional_str, "test dataset kind ('none': no test set)"),
    "test_split": (str, "split of the test dataset"),
    "val": (str, "'holdout' (stratified split of the training data) or a split name"),
    "val_fraction": (float, "share of each class held out for validation"),
    "val_seed": (int, "seed of the validation hold-out"),
    "num_classes": (_optional_int, "classes of both heads ('none': from the data)"),
    "init": (_optional_str, "zoo record, .safetensors file, or 'none' (from scratch)"),
    "batch_size": (int, "global batch size (all processes x accumulation)"),
    "lr": (float, "SGD learning rate"),
    "momentum": (float, "SGD momentum"),
    "weight_decay": (float, "SGD weight decay"),
    "lr_step": (int, "epochs between learning-rate decays"),
    "lr_gamma": (float, "learning-rate decay factor"),
    "epochs": (int, "training epochs"),
    "oversample": (bool, "class-balanced oversampling of the training split"),
    "fusion_weight": (float, "lambda of the two-branch loss and fusion"),
    "input_size": (int, "input size (a multiple of 16)"),
    "rrc_scale": (_pair, "RandomResizedCrop area range, e.g. 0.08,1"),
    "hflip": (bool, "random horizontal flip"),
    "face": (str, "face policy recorded in the checkpoint: aligned, box or none"),
    "seed": (int, "seed of initialisation, sampling order and augmentation"),
}
NOT_OVERRIDABLE = {"name", "record", "description"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_train_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train or fine-tune MA-Net with a recipe",
        description="Train with a recipe (see --show-recipe). Every recipe field can be "
        "overridden; under torchrun, every process runs this same command.",
        allow_abbrev=False,
    )
    p.add_argument("--recipe", choices=list_recipes(), help="recipe name")
    p.add_argument("--show-recipe", metavar="NAME", help="print a recipe as JSON and exit")
    p.add_argument(
        "--data", action="append", metavar="[KIND=]PATH",
        help="dataset folder or file; repeat for recipes reading several (see --show-recipe)",
    )  # fmt: skip
    p.add_argument("--out", help="run directory (default runs/RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--seeds", type=int, nargs="+", help="one run per seed, then mean +- std")
    group = p.add_argument_group("recipe overrides")
    for name, (kind, text) in RECIPE_OVERRIDES.items():
        if kind is bool:
            group.add_argument(_flag(name), action=argparse.BooleanOptionalAction, help=text)
        else:
            group.add_argument(_flag(name), type=kind, help=text, default=argparse.SUPPRESS)
    run = p.add_argument_group("machine")
    run.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    run.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    run.add_argument("--channels-last", action="store_true")
    run.add_argument("--compile", action="store_true", help="torch.compile the model")
    run.add_argument("--accumulation", type=int, default=1, help="micro-batches per step")
    run.add_argument("--workers", type=int, default=4, help="DataLoader workers")
    run.add_argument("--deterministic", action="store_true")
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                     help="also checkpoint every STEPS optimizer steps")  # fmt: skip
    run.add_argument("--no-sync-bn", dest="sync_bn", action="store_false",
                     help="under DDP on CUDA keep per-process BatchNorm")  # fmt: skip
    run.add_argument("--freeze-bn", action="store_true", help="BatchNorm in eval mode")
    run.add_argument("--bad-images", choices=("fail", "skip"), default="fail")
    run.add_argument("--verify-images", action="store_true", help="decode all images first")
    run.add_argument("--no-progress", dest="progress", action="store_false")
    run.add_argument("--no-export", dest="export", action="store_false")
    return p


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    recipe = get_recipe(args.recipe)
    changes = {}
    for name, (kind, _) in RECIPE_OVERRIDES.items():
        if name not in vars(args):  # not given (default=SUPPRESS)
            continue
        value = getattr(args, name)
        if kind is bool and value is None:  # --x / --no-x not given
            continue
        changes[name] = value
    return dataclasses.replace(recipe, **changes)


def options_from_args(args: argparse.Namespace) -> Any:
    from manet_zoo.train.engine import RunOptions

    return RunOptions(
        device=args.device, amp=args.amp, channels_last=args.channels_last,
        compile=args.compile, accumulation=args.accumulation, workers=args.workers,
        deterministic=args.deterministic, checkpoint_every=args.checkpoint_every,
        sync_bn=args.sync_bn, freeze_bn=args.freeze_bn, bad_images=args.bad_images,
        verify_images=args.verify_images, progress=args.progress, export=args.export,
        resume=args.resume,
    )  # fmt: skip


def add_evaluate_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="score a model on a dataset split: accuracy, per class, confusion matrix",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="zoo name or hf-hub:ORG/REPO[@REV]")
    which.add_argument("--weights", help="a .safetensors file")
    p.add_argument("--dataset", required=True, metavar="KIND", help="dataset kind, e.g. rafdb")
    p.add_argument("--data", required=True, help="dataset folder or file")
    p.add_argument("--split", help="split (default: the kind's test split)")
    p.add_argument("--list", help="RAN occlusion/pose list file (default: found under --data)")
    p.add_argument("--out", help="write eval JSON and confusion-matrix PNG here")
    p.add_argument("--input-size", type=int, help="override the model's input size")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--bad-images", choices=("fail", "skip"), default="fail")
    return p


def add_publish_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "publish",
        help="upload a finished run to the Hugging Face Hub and print its manifest record",
    )
    p.add_argument("run_dir", help="a finished training run directory")
    p.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    p.add_argument("--dry-run", action="store_true", help="upload nothing; print the record")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no upload progress bars")  # fmt: skip
    return p
