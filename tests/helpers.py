"""Paths and small builders shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

REFERENCE_DIR = Path(__file__).parent / "reference"


def official_keys() -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of the official 7-class state_dict, in file order."""
    rows = []
    for line in (REFERENCE_DIR / "official_state_dict.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split("\t")
            rows.append((key, tuple(int(s) for s in shape.split(",")) if shape else ()))
    return rows


def photo_crops(size: int = 112, count: int = 128) -> torch.Tensor:
    """``count`` varied inputs (N x 3 x size x size in [0, 1]): random crops, fixed by a
    seed, of real photographs shipped by scikit-image."""
    from skimage import data

    photos = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.hubble_deep_field(),
    ]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(64, min(photo.shape[:2])))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = torch.from_numpy(photo[top : top + side, left : left + side].copy())
        crop = crop.permute(2, 0, 1).float().div(255)[None]
        crops.append(torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear"))
    return torch.cat(crops)
