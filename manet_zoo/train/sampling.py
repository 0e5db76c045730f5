"""Sampling order and augmentation as pure functions of (seed, epoch, position).

Nothing here draws from a global random generator: the order of an epoch is a function
of the recipe's seed and the epoch, and each sample's ``RandomResizedCrop`` and flip are
a function of the seed, the epoch and its position in that order. Hence

* ``--resume`` continues exactly, from the end of an epoch or from the middle of one;
* ``N`` processes of ``batch_size / N`` see exactly the images, and the augmentations, of
  one process of ``batch_size`` (the shard of rank ``r`` is positions ``r, r + N, ...``,
  like ``torch.utils.data.DistributedSampler``);
* DataLoader workers need no seeding.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 63) - 1


def mix_seed(*values: int) -> int:
    """A 63-bit seed mixed from integers (stable across Python runs, unlike ``hash``)."""
    h = 0x632BE59BD9B4E019
    for v in values:
        h = ((h ^ (int(v) & _MASK)) * _MIX + 0x7F4A7C15) & _MASK
        h ^= h >> 29
    return h


def epoch_order(
    n: int, epoch: int, seed: int, weights: Sequence[float] | torch.Tensor | None = None
) -> list[int]:
    """Sample indices of one epoch: a permutation of ``range(n)``, or ``n`` draws with
    replacement proportional to ``weights`` (class-balanced oversampling)."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch, 1))
    if weights is None:
        return torch.randperm(n, generator=g).tolist()
    w = torch.as_tensor(weights, dtype=torch.double)
    return torch.multinomial(w, n, replacement=True, generator=g).tolist()


def balanced_weights(targets: Sequence[int]) -> list[float]:
    """Weight ``1 / count(label)`` per sample, as RAN/SCN oversample AffectNet."""
    counts: dict[int, int] = {}
    for t in targets:
        counts[t] = counts.get(t, 0) + 1
    return [1.0 / counts[t] for t in targets]


class ShardSampler(Sampler):
    """Yields ``(index, augmentation seed)`` for this rank's share of an epoch's order,
    starting at global position ``start`` (a multiple of the global batch on resume).

    The order is padded by wrapping around to a multiple of ``world_size``, as
    ``DistributedSampler`` does, so every rank yields the same number of samples.
    """

    def __init__(
        self,
        order: Sequence[int],
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        self.order = list(order)
        padded = math.ceil(len(self.order) / world_size) * world_size
        self.order += self.order[: padded - len(self.order)]
        self.seed, self.epoch = seed, epoch
        self.rank, self.world_size, self.start = rank, world_size, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for pos in range(self.start + self.rank, len(self.order), self.world_size):
            yield self.order[pos], mix_seed(self.seed, self.epoch, pos, 2)

    def __len__(self) -> int:
        return len(range(self.start + self.rank, len(self.order), self.world_size))


class TrainAugment:
    """``RandomResizedCrop(size, scale)`` + ``RandomHorizontalFlip`` + ``ToTensor`` (no
    normalisation, as the official code), with the randomness drawn from ``seed``.

    The crop follows torchvision's ``RandomResizedCrop.get_params`` step for step.
    """

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = True,
    ) -> None:
        self.size, self.scale, self.ratio, self.hflip = size, scale, ratio, hflip

    def crop_params(self, width: int, height: int, rng: random.Random) -> tuple[int, ...]:
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, height - h), rng.randint(0, width - w), h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif in_ratio > max(self.ratio):
            h, w = height, round(height * max(self.ratio))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image: Any, seed: int | None) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        rng = random.Random(seed if seed is not None else random.getrandbits(63))
        top, left, h, w = self.crop_params(image.width, image.height, rng)
        image = F.resized_crop(
            image, top, left, h, w, [self.size, self.size],
            interpolation=InterpolationMode.BILINEAR, antialias=True,
        )  # fmt: skip
        if self.hflip and rng.random() < 0.5:
            image = F.hflip(image)
        return F.to_tensor(image)


class EvalTransform:
    """A checkpoint's test-time preprocessing (seed ignored)."""

    def __init__(self, preprocessing: Any) -> None:
        self.transform = preprocessing.transforms()

    def __call__(self, image: Any, seed: int | None = None) -> torch.Tensor:
        return self.transform(image)


def collate_skipping(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack ``(image, label)`` pairs, dropping ``None`` (unreadable, skipped) samples;
    returns ``(images, labels, number dropped)``."""
    kept = [b for b in batch if b is not None]
    dropped = len(batch) - len(kept)
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), dropped
    images = torch.stack([b[0] for b in kept])
    labels = torch.tensor([b[1] for b in kept], dtype=torch.long)
    return images, labels, dropped
