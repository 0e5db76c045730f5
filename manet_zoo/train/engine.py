"""The training loop: two-branch loss, SGD + step schedule, oversampling, AMP,
channels_last, ``torch.compile``, gradient accumulation, DDP through torchrun, exact
checkpoint/resume, metrics, and the run's final selection.

A run directory holds::

    recipe.json           effective recipe + run options + data paths + versions
    splits/*.txt          train / val / test lists (key, label) and splits.sha256
    checkpoint.pt         model, optimizer, scheduler, scaler, RNG states, position, history
    checkpoint.json       where that checkpoint is (epoch, step), written after it
    best.safetensors      weights of the epoch with the best validation accuracy
    metrics.jsonl/.csv    one row per epoch
    summary.json          selection on validation, last epoch, best-on-test (labelled)
    curves.png, test_confusion.png
    model.safetensors, manifest_record.json, README.md   (the export, see publish.py)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from manet_zoo._version import __version__
from manet_zoo.errors import TrainingError, WeightsNotPublishedError
from manet_zoo.models.manet import MANet
from manet_zoo.preprocessing import Preprocessing
from manet_zoo.train.datasets import KINDS, FERDataset, SplitNotFoundError, load_dataset, merge
from manet_zoo.train.distributed import DistContext, setup
from manet_zoo.train.evaluate import align_labels, confusion_matrix
from manet_zoo.train.recipes import Recipe
from manet_zoo.train.sampling import (
    EvalTransform,
    ShardSampler,
    TrainAugment,
    balanced_weights,
    collate_skipping,
    epoch_order,
)
from manet_zoo.train.selection import split_lines, splits_digest, stratified_split

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_INFO = "checkpoint.json"
BEST = "best.safetensors"
CHECKPOINT_FORMAT = 1
AMP_MODES = ("none", "bf16", "fp16")
CSV_COLUMNS = (
    "epoch", "lr", "train_loss", "train_acc", "val_acc", "val_mean_class_acc",
    "test_acc", "test_mean_class_acc", "images", "skipped", "seconds", "images_per_s",
)  # fmt: skip


@dataclass(frozen=True)
class RunOptions:
    """How a run uses the machine; none of it changes what the recipe means (except
    that ``freeze_bn`` and ``accumulation`` change BatchNorm's batch statistics).

    Attributes:
        device: ``cpu``, ``cuda``, ``cuda:1``...; default CUDA when available.
        amp: ``none``, ``bf16`` (CUDA or CPU) or ``fp16`` (with a gradient scaler; meant
            for CUDA: on a CPU it runs, slowly, and a warning says to use bf16).
        channels_last: NHWC memory format (faster convolutions on recent GPUs).
        compile: ``torch.compile`` the training model.
        accumulation: split each process's share of the batch into this many
            micro-batches (same global batch on a smaller GPU).
        workers: DataLoader worker processes.
        deterministic: ``torch.use_deterministic_algorithms(True)`` and cuDNN without
            autotuning (slower; bit-reproducible on the same hardware and software).
        checkpoint_every: also checkpoint every N optimizer steps inside an epoch (0: only
            at the end of each epoch).
        sync_bn: under DDP on CUDA, convert BatchNorm to SyncBatchNorm so batch statistics
            cover the global batch (PyTorch has no SyncBatchNorm on CPU: plain per-process
            BatchNorm there).
        freeze_bn: keep BatchNorm in eval mode (running statistics used, not updated;
            its affine parameters still train). Every sample's gradient is then
            independent of the others in its batch.
        bad_images: ``fail`` (list them and stop) or ``skip`` (drop and count them).
        verify_images: decode every image before training (finds corrupt files up front).
        progress: progress bars on the main process.
        export: write ``model.safetensors``, the manifest record and the model card at the end.
        resume: continue the run in ``out`` from its checkpoint.
    """

    device: str | None = None
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    accumulation: int = 1
    workers: int = 4
    deterministic: bool = False
    checkpoint_every: int = 0
    sync_bn: bool = True
    freeze_bn: bool = False
    bad_images: str = "fail"
    verify_images: bool = False
    progress: bool = True
    export: bool = True
    resume: bool = False

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.accumulation < 1 or self.workers < 0 or self.checkpoint_every < 0:
            raise ValueError("accumulation >= 1, workers >= 0 and checkpoint_every >= 0")


# ---------------------------------------------------------------- set-up helpers


def resolve_data(
    recipe: Recipe, data: str | os.PathLike[str] | Sequence[str] | Mapping[str, str]
) -> dict[str, str]:
    """Map the recipe's dataset kinds to paths. ``data`` is a mapping, or paths as
    ``KIND=PATH`` or bare, the bare ones taken in the order of ``recipe.data_kinds``."""
    if isinstance(data, Mapping):
        given = {k: os.fspath(v) for k, v in data.items()}
        bare: list[str] = []
    else:
        entries = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        given, bare = {}, []
        for entry in map(os.fspath, entries):
            kind, sep, path = entry.partition("=")
            if sep and kind in KINDS:
                given[kind] = path
            else:
                bare.append(entry)
    kinds = recipe.data_kinds
    open_kinds = [k for k in kinds if k not in given]
    if len(bare) > len(open_kinds):
        raise ValueError(
            f"recipe {recipe.name!r} reads {len(kinds)} dataset(s) {kinds}; got {len(bare)} "
            "extra path(s). Use KIND=PATH to be explicit."
        )
    given.update(zip(open_kinds, bare, strict=False))
    missing = [k for k in kinds if k not in given]
    if missing:
        raise ValueError(
            f"recipe {recipe.name!r} reads the datasets {kinds}: give a path for "
            f"{missing} (--data PATH in that order, or --data KIND=PATH)"
        )
    return {k: given[k] for k in kinds}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_model(
    init: str | None, num_classes: int, classes: Sequence[str], fusion_weight: float
) -> tuple[MANet, str]:
    """The model to train and a sentence saying where its weights came from.

    ``init`` is ``None`` (from scratch), a zoo record (``manet_msceleb``...) or a
    ``.safetensors`` file. The heads are kept when the file's labels are ours (in any
    order: rows are permuted), and replaced by new ones otherwise.
    """
    if init is None or init.lower() == "none":
        return MANet(num_classes, fusion_weight=fusion_weight), "random initialisation"
    from manet_zoo.factories import create_model, manet

    path = Path(init).expanduser()
    if path.suffix == ".safetensors" or path.exists():
        model = manet(weights=path)
    else:
        try:
            model = create_model(init, pretrained=True)
        except WeightsNotPublishedError as exc:
            raise WeightsNotPublishedError(
                f"{exc} --init also takes a local file: --init path/to/{init}.safetensors"
            ) from exc
    model.fusion_weight = fusion_weight
    file_labels = tuple(model.labels) if model.labels else None
    classes = tuple(classes)
    if model.num_classes == num_classes and file_labels in (None, classes):
        return model.train(), f"{init} (heads kept)"
    if model.num_classes == num_classes and file_labels and set(file_labels) == set(classes):
        rows = torch.tensor([file_labels.index(c) for c in classes])
        with torch.no_grad():
            for head in (model.head_local, model.head_global):
                head.weight.copy_(head.weight[rows])
                head.bias.copy_(head.bias[rows])
        return model.train(), f"{init} (heads reordered to {classes})"
    before = model.num_classes
    model.reset_classifier(num_classes)
    return (
        model.train(),
        f"{init} (its {before}-class heads replaced by new {num_classes}-class heads)",
    )


class Branches(nn.Module):
    """Wraps MA-Net so that ``forward`` returns both branches' logits (what DDP hooks)."""

    def __init__(self, model: MANet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_branches(x)


def two_branch_loss(
    local: torch.Tensor, glob: torch.Tensor, target: torch.Tensor, fusion_weight: float
) -> torch.Tensor:
    """``lambda * CE(local) + (1 - lambda) * CE(global)``, as the official training code."""
    return fusion_weight * F.cross_entropy(local.float(), target) + (
        1.0 - fusion_weight
    ) * F.cross_entropy(glob.float(), target)


def _freeze_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".incomplete")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_metrics(out: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` and ``metrics.csv`` from the whole history (so a resumed
    run never repeats or loses a row)."""
    with open(out / "metrics.jsonl.incomplete", "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")
    os.replace(out / "metrics.jsonl.incomplete", out / "metrics.jsonl")
    with open(out / "metrics.csv.incomplete", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    os.replace(out / "metrics.csv.incomplete", out / "metrics.csv")


@dataclass
class _Data:
    train: FERDataset
    val: FERDataset
    test: FERDataset | None
    classes: tuple[str, ...]
    splits: dict[str, list[str]]


def prepare_data(recipe: Recipe, paths: Mapping[str, str], options: RunOptions) -> _Data:
    """Training, validation and test sets of a recipe, with the split lists."""
    opts = {"bad_images": options.bad_images, "verify": options.verify_images}
    parts = [load_dataset(k, paths[k], "train", **opts) for k in recipe.train_data]
    full = merge(parts) if len(parts) > 1 else parts[0]
    classes = full.classes
    if recipe.val == "holdout":
        train_idx, val_idx = stratified_split(full.targets, recipe.val_fraction, recipe.val_seed)
        train, val = full.subset(train_idx, "train"), full.subset(val_idx, "val")
    else:
        first = recipe.train_data[0]
        train, val = full, load_dataset(first, paths[first], recipe.val, **opts)
        val, _ = align_labels(val, classes)
    if len(val) == 0:
        # Model selection needs at least one validation image; fail before training.
        raise TrainingError(
            f"the validation split is empty ({len(train)} training images; a stratified "
            f"{recipe.val_fraction:g} holds out only classes with two or more images). Add "
            "images, or pass a larger --val-fraction, or a validation split with --val."
            if recipe.val == "holdout"
            else f"the validation split '{recipe.val}' of {recipe.train_data[0]} is empty"
        )
    test = None
    if recipe.test_data:
        try:
            test = load_dataset(
                recipe.test_data, paths[recipe.test_data], recipe.test_split, **opts
            )
            test, _ = align_labels(test, classes)
        except SplitNotFoundError:
            test = None
    splits = {
        "train": split_lines(train.keys, train.targets),
        "val": split_lines(val.keys, val.targets),
    }
    if test is not None:
        splits["test"] = split_lines(test.keys, test.targets)
    return _Data(train, val, test, classes, splits)


# ---------------------------------------------------------------- the run


def train(
    recipe: Recipe,
    data: str | os.PathLike[str] | Sequence[str] | Mapping[str, str],
    out: str | os.PathLike[str],
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` on ``data`` into the run directory ``out``; returns the summary.

    Run it under ``torchrun`` for several GPUs or nodes: every process calls this
    function with the same arguments, rank 0 writes.

    Example:
        >>> from manet_zoo.train import get_recipe, train, RunOptions
        >>> summary = train(get_recipe("rafdb"), "~/data/RAF-DB", "runs/rafdb")  # doctest: +SKIP
        >>> summary["test_acc_selected"]                                          # doctest: +SKIP
    """
    options = options or RunOptions()
    ctx = setup(options.device)
    try:
        return _Run(recipe, data, Path(out).expanduser(), options, ctx).run()
    finally:
        ctx.close()


class _Run:
    def __init__(
        self, recipe: Recipe, data: Any, out: Path, options: RunOptions, ctx: DistContext
    ) -> None:
        self.recipe, self.out, self.options, self.ctx = recipe, out, options, ctx
        self.paths = resolve_data(recipe, data)
        self.device = ctx.device
        if recipe.batch_size % (ctx.world_size * options.accumulation):
            raise TrainingError(
                f"batch size {recipe.batch_size} is not divisible by {ctx.world_size} "
                f"process(es) x {options.accumulation} accumulation step(s)"
            )
        if options.amp == "fp16" and self.device.type == "cpu":
            warnings.warn(
                "--amp fp16 on a CPU runs, but slowly (few CPUs have fp16 arithmetic); "
                "use --amp bf16 there",
                stacklevel=2,
            )
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[options.amp]
        self.local_batch = recipe.batch_size // ctx.world_size
        self.log_file = out / "train.log"

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, flush=True)
            with open(self.log_file, "a") as f:
                f.write(message + "\n")

    # -- set-up
    def _check_out(self) -> dict[str, Any] | None:
        checkpoint = self.out / CHECKPOINT
        if self.options.resume:
            if not checkpoint.is_file():
                raise TrainingError(f"--resume: no {CHECKPOINT} in {self.out}")
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            if state.get("format") != CHECKPOINT_FORMAT:
                raise TrainingError(f"{checkpoint} has an unknown format")
            saved = Recipe.from_dict(state["recipe"])
            differs = [
                f.name for f in dataclasses.fields(Recipe)
                if f.name != "epochs" and getattr(saved, f.name) != getattr(self.recipe, f.name)
            ]  # fmt: skip
            if differs:
                raise TrainingError(
                    f"--resume with a different recipe ({', '.join(differs)} changed); only "
                    "--epochs may change. Start a new run in another --out."
                )
            return state
        if checkpoint.exists():
            raise TrainingError(
                f"{self.out} already holds a run; continue it with --resume or choose another --out"
            )
        return None

    def run(self) -> dict[str, Any]:
        recipe, options, ctx = self.recipe, self.options, self.ctx
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        ctx.barrier()
        state = self._check_out()
        set_deterministic(options.deterministic)
        seed_everything(recipe.seed)
        data = prepare_data(recipe, self.paths, options)
        self.data = data
        num_classes = recipe.num_classes or len(data.classes)
        if num_classes != len(data.classes):
            raise TrainingError(
                f"--num-classes {num_classes} but the data has {len(data.classes)} classes "
                f"{data.classes}"
            )
        digest = splits_digest(data.splits)
        if state is not None and state["split_sha256"] != digest:
            raise TrainingError("--resume: the data changed since the run started (split digest)")
        self.preprocessing = Preprocessing(
            input_size=(recipe.input_size, recipe.input_size), face=recipe.face
        )
        if ctx.is_main and state is None:
            self._write_setup(data, digest)
        if state is None:
            model, origin = build_model(
                recipe.init, num_classes, data.classes, recipe.fusion_weight
            )
        else:
            model = MANet(num_classes, fusion_weight=recipe.fusion_weight)
            origin = "resumed"
        model.labels = data.classes
        model.preprocessing = self.preprocessing
        self.model = model.to(self.device)
        if options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        net: nn.Module = Branches(self.model)
        if ctx.enabled:
            if self.device.type == "cuda" and options.sync_bn and not options.freeze_bn:
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
                self.model = net.model
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.ddp = net if ctx.enabled else None
        if options.compile:
            net = torch.compile(net)
        self.net = net
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=recipe.lr_step, gamma=recipe.lr_gamma
        )
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range.
        self.scaler = torch.amp.GradScaler(self.device.type) if options.amp == "fp16" else None
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": None, "val_acc": -1.0}
        start_epoch, start_step, partial = 0, 0, None
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.history, self.best = list(state["history"]), dict(state["best"])
            start_epoch, start_step = int(state["epoch"]), int(state["step"])
            partial = state["partial"] if ctx.is_main else None
            set_rng_state(state["rng"])
            self.log(f"resumed {self.out} at epoch {start_epoch + 1}, step {start_step}")
        self.log(
            f"recipe {recipe.name}: {len(data.train)} train / {len(data.val)} val / "
            f"{len(data.test) if data.test is not None else 0} test images, {num_classes} "
            f"classes; init: {origin}; {ctx.world_size} process(es) on {self.device}, batch "
            f"{recipe.batch_size} = {ctx.world_size} x {options.accumulation} x "
            f"{self.local_batch // options.accumulation}"
        )
        self.digest = digest
        self.train_view = data.train.with_transform(
            TrainAugment(recipe.input_size, tuple(recipe.rrc_scale), hflip=recipe.hflip)
        )
        self.weights = balanced_weights(data.train.targets) if recipe.oversample else None
        for epoch in range(start_epoch, recipe.epochs):
            self._epoch(epoch, start_step if epoch == start_epoch else 0, partial)
            partial = None
        summary = self._finish()
        return summary

    def _write_setup(self, data: _Data, digest: str) -> None:
        split_dir = self.out / "splits"
        split_dir.mkdir(exist_ok=True)
        for name, lines in data.splits.items():
            (split_dir / f"{name}.txt").write_text("\n".join(lines) + "\n")
        (split_dir / "splits.sha256").write_text(digest + "\n")
        _atomic_json(
            self.out / "recipe.json",
            {
                "recipe": self.recipe.to_dict(),
                "options": dataclasses.asdict(self.options),
                "data": self.paths,
                "classes": list(data.classes),
                "sizes": {
                    "train": len(data.train),
                    "val": len(data.val),
                    "test": len(data.test) if data.test is not None else 0,
                },
                "skipped_images": {
                    "train+val": len(data.train.skipped),
                    "test": len(data.test.skipped) if data.test is not None else 0,
                },
                "world_size": self.ctx.world_size,
                "manet_zoo_version": __version__,
                "torch_version": torch.__version__,
                "split_sha256": digest,
            },
        )

    # -- one epoch
    def _epoch(self, epoch: int, start_step: int, partial: Mapping[str, float] | None) -> None:
        recipe, options, ctx = self.recipe, self.options, self.ctx
        order = epoch_order(len(self.train_view), epoch, recipe.seed, self.weights)
        steps = math.ceil(len(order) / recipe.batch_size)
        sampler = ShardSampler(
            order, seed=recipe.seed, epoch=epoch, rank=ctx.rank, world_size=ctx.world_size,
            start=start_step * recipe.batch_size,
        )  # fmt: skip
        loader = DataLoader(
            self.train_view,
            batch_size=self.local_batch,
            sampler=sampler,
            num_workers=options.workers,
            collate_fn=collate_skipping,
            pin_memory=self.device.type == "cuda",
        )
        sums = torch.zeros(4, dtype=torch.float64)  # loss * n, correct, n, skipped
        if partial is not None:
            sums += torch.tensor([partial[k] for k in ("loss", "correct", "n", "skipped")])
        lr = self.optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        bar = self._bar(steps, start_step, epoch)
        step = start_step
        for images, labels, skipped in loader:
            sums += self._step(images, labels, skipped)
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums[0].item() / max(sums[2].item(), 1):.4f}")
            if options.checkpoint_every and step % options.checkpoint_every == 0 and step < steps:
                self._checkpoint(epoch, step, ctx.all_reduce(sums))
        if bar is not None:
            bar.close()
        self.scheduler.step()
        total = ctx.all_reduce(sums)
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": total[0].item() / max(total[2].item(), 1),
            "train_acc": 100.0 * total[1].item() / max(total[2].item(), 1),
            "images": int(total[2].item()),
            "skipped": int(total[3].item()),
            "seconds": round(seconds, 3),
            "images_per_s": round(total[2].item() / seconds, 2) if seconds > 0 else None,
        }
        row.update(self._scores("val", self.data.val))
        if self.data.test is not None:
            row.update(self._scores("test", self.data.test))
        else:
            row.update({"test_acc": None, "test_mean_class_acc": None, "test_confusion": None})
        if row["val_acc"] > self.best["val_acc"]:
            self.best = {"epoch": epoch + 1, "val_acc": row["val_acc"]}
            if ctx.is_main:
                self._save_weights(self.out / BEST, epoch + 1)
        self.history.append(row)
        if ctx.is_main:
            write_metrics(self.out, self.history)
        test = f", test {row['test_acc']:.2f}%" if row["test_acc"] is not None else ""
        self.log(
            f"epoch {epoch + 1}/{recipe.epochs}: lr {lr:.3g}, loss {row['train_loss']:.4f}, "
            f"train {row['train_acc']:.2f}%, val {row['val_acc']:.2f}%{test}, "
            f"{row['images_per_s']} img/s"
        )
        self._checkpoint(epoch + 1, 0, None)

    def _bar(self, steps: int, start: int, epoch: int) -> Any:
        if not (self.options.progress and self.ctx.is_main):
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=steps, initial=start, desc=f"epoch {epoch + 1}/{self.recipe.epochs}",
                    leave=False, dynamic_ncols=True)  # fmt: skip

    def _step(self, images: torch.Tensor, labels: torch.Tensor, skipped: int) -> torch.Tensor:
        options, fw = self.options, self.recipe.fusion_weight
        self.net.train()
        if options.freeze_bn:
            _freeze_batchnorm(self.model)
        n = len(labels)
        out = torch.tensor([0.0, 0.0, float(n), float(skipped)], dtype=torch.float64)
        if n == 0:
            return out
        images = images.to(self.device, non_blocking=True)
        if options.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(self.device, non_blocking=True)
        micro = math.ceil(n / options.accumulation)
        chunks = list(zip(images.split(micro), labels.split(micro), strict=True))
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, (x, y) in enumerate(chunks):
            last = i == len(chunks) - 1
            sync = (
                self.ddp.no_sync()
                if self.ddp is not None and not last
                else contextlib.nullcontext()
            )
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):  # fmt: skip
                    local, glob = self.net(x)
                loss = two_branch_loss(local, glob, y, fw)
                scaled = loss * (len(y) / n)
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            fused = fw * local.detach().float() + (1.0 - fw) * glob.detach().float()
            loss_sum += loss.detach().double() * len(y)
            correct += (fused.argmax(dim=1) == y).sum().double()
        out[0], out[1] = loss_sum.item(), correct.item()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out

    def _scores(self, name: str, dataset: FERDataset) -> dict[str, Any]:
        view = dataset.with_transform(EvalTransform(self.preprocessing))
        matrix = confusion_matrix(
            self.model, view, self.model.num_classes, batch_size=self.local_batch,
            device=self.device, workers=self.options.workers, amp_dtype=self.amp_dtype,
            channels_last=self.options.channels_last, ctx=self.ctx,
        )  # fmt: skip
        total = matrix.sum().item()
        support = matrix.sum(dim=1)
        recalls = [matrix[i, i].item() / s.item() for i, s in enumerate(support) if s > 0]
        return {
            f"{name}_acc": 100.0 * matrix.diag().sum().item() / total if total else float("nan"),
            f"{name}_mean_class_acc": 100.0 * sum(recalls) / len(recalls) if recalls else None,
            f"{name}_confusion": matrix.tolist(),
        }

    # -- persistence
    def _save_weights(self, path: Path, epoch: int) -> None:
        from manet_zoo.checkpoint import save_weights

        save_weights(
            self.model.state_dict(),
            path,
            labels=self.data.classes,
            preprocessing=self.preprocessing,
            metadata={
                "manet_zoo.source": f"trained:{self.recipe.name}",
                "manet_zoo.epoch": str(epoch),
                "manet_zoo.seed": str(self.recipe.seed),
            },
        )

    def _checkpoint(self, epoch: int, step: int, sums: torch.Tensor | None) -> None:
        """All ranks call this; rank 0 writes ``checkpoint.pt`` atomically, then the
        small ``checkpoint.json`` saying where it stands."""
        if self.ctx.is_main:
            partial = None
            if sums is not None:
                partial = dict(zip(("loss", "correct", "n", "skipped"), sums.tolist(), strict=True))
            state = {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch,
                "step": step,
                "partial": partial,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "history": self.history,
                "best": self.best,
                "rng": rng_state(),
                "recipe": self.recipe.to_dict(),
                "split_sha256": self.digest,
                "world_size": self.ctx.world_size,
            }
            tmp = self.out / (CHECKPOINT + ".incomplete")
            torch.save(state, tmp)
            os.replace(tmp, self.out / CHECKPOINT)
            _atomic_json(self.out / CHECKPOINT_INFO, {"epoch": epoch, "step": step})
        self.ctx.barrier()

    # -- the end
    def _finish(self) -> dict[str, Any]:
        summary = summarize(self.history, self.recipe, self.data, self.digest, self.ctx.world_size)
        if self.ctx.is_main:
            _atomic_json(self.out / "summary.json", summary)
            from manet_zoo.train.plots import plot_curves

            plot_curves(self.history, self.out / "curves.png")
            if self.options.export and self.history:
                from manet_zoo.train.publish import export_run

                export_run(self.out)
            self.log(format_summary(summary))
        self.ctx.barrier()
        return summary


def summarize(
    history: Sequence[Mapping[str, Any]],
    recipe: Recipe,
    data: _Data,
    digest: str,
    world_size: int,
) -> dict[str, Any]:
    """Selection on validation, the last epoch, and the official-style best-on-test."""
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "record": recipe.record,
        "seed": recipe.seed,
        "val": recipe.val,
        "val_fraction": recipe.val_fraction if recipe.val == "holdout" else None,
        "val_seed": recipe.val_seed if recipe.val == "holdout" else None,
        "split_sha256": digest,
        "sizes": {
            "train": len(data.train),
            "val": len(data.val),
            "test": len(data.test) if data.test is not None else 0,
        },
        "test_set": f"{recipe.test_data} {recipe.test_split}" if data.test is not None else None,
        "classes": list(data.classes),
        "world_size": world_size,
        "epochs": len(history),
    }
    if not history:
        return summary
    selected = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))
    last = history[-1]
    summary.update(
        {
            "selected_epoch": selected["epoch"],
            "val_acc_selected": selected["val_acc"],
            "test_acc_selected": selected["test_acc"],
            "test_mean_class_acc_selected": selected["test_mean_class_acc"],
            "test_confusion_selected": selected["test_confusion"],
            "test_acc_last": last["test_acc"],
            "test_mean_class_acc_last": last["test_mean_class_acc"],
        }
    )
    if data.test is not None:
        best = max(history, key=lambda r: (r["test_acc"], -r["epoch"]))
        summary["best_on_test"] = {
            "epoch": best["epoch"],
            "test_acc": best["test_acc"],
            "note": "official-style number: the epoch with the best TEST accuracy, as the "
            "official code keeps; optimistic, for comparison with the paper only",
        }
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    if "selected_epoch" not in summary:
        return "no epoch was trained"
    lines = [
        f"selected epoch {summary['selected_epoch']} on validation "
        f"({summary['val_acc_selected']:.2f}%)"
    ]
    if summary.get("test_acc_selected") is not None:
        lines += [
            f"test accuracy at the selected epoch: {summary['test_acc_selected']:.2f}% "
            f"(mean class {summary['test_mean_class_acc_selected']:.2f}%)",
            f"test accuracy at the last epoch:     {summary['test_acc_last']:.2f}%",
            f"best test accuracy over epochs (official-style, selected on test): "
            f"{summary['best_on_test']['test_acc']:.2f}% at epoch {summary['best_on_test']['epoch']}",  # noqa: E501
        ]
    return "\n".join(lines)


def train_seeds(
    recipe: Recipe,
    data: Any,
    out: str | os.PathLike[str],
    seeds: Sequence[int],
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """One run per seed in ``out/seed_<s>``, then mean +- std in ``out/seeds.json``."""
    out = Path(out).expanduser()
    summaries = []
    for seed in seeds:
        summaries.append(train(recipe.replace(seed=seed), data, out / f"seed_{seed}", options))
    result = aggregate_seeds(summaries)
    if int(os.environ.get("RANK", "0")) == 0:
        _atomic_json(out / "seeds.json", result)
    return result


def aggregate_seeds(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of each headline number over seeds."""
    keys = (
        "val_acc_selected",
        "test_acc_selected",
        "test_mean_class_acc_selected",
        "test_acc_last",
    )
    out: dict[str, Any] = {"seeds": [s.get("seed") for s in summaries], "runs": len(summaries)}
    for key in (*keys, "best_on_test"):
        values = [
            (s[key]["test_acc"] if key == "best_on_test" else s[key])
            for s in summaries
            if s.get(key) is not None
        ]
        if values:
            mean = float(np.mean(values))
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            out[key] = {"mean": mean, "std": std, "values": values}
    return out
