"""How an image becomes model input. Travels with the weights (manifest record or
safetensors metadata), so that loading a checkpoint never silently changes it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RESIZE_MODES = ("squash",)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
FACE_POLICIES = ("aligned", "box", "none")


@dataclass(frozen=True)
class Preprocessing:
    """The input contract of one checkpoint.

    Attributes:
        input_size: (height, width) fed to the network.
        resize: ``"squash"``: resize to ``input_size`` ignoring aspect ratio, as the
            official ``transforms.Resize((224, 224))`` does.
        interpolation: resampling filter of that resize.
        mean, std: per-channel normalisation after scaling to [0, 1]; ``None`` (the
            official code) means none.
        face: how a face is cut from a photo before the resize: ``"aligned"`` (5-point
            similarity alignment, like RAF-DB's aligned images), ``"box"`` (the detector's
            box with a margin, like AffectNet's crops) or ``"none"`` (the whole image).
        color: channel order the network expects. Always ``"rgb"``.
    """

    input_size: tuple[int, int] = (224, 224)
    resize: str = "squash"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    face: str = "aligned"
    color: str = "rgb"

    def __post_init__(self) -> None:
        h, w = self.input_size
        if h < 16 or w < 16 or h % 16 or w % 16:
            raise ValueError(f"input_size must be multiples of 16 (MA-Net), got {self.input_size}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}"
            )
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std go together: give both or neither")
        if self.face not in FACE_POLICIES:
            raise ValueError(f"face must be one of {FACE_POLICIES}, got {self.face!r}")
        if self.color != "rgb":
            raise ValueError(f"color must be 'rgb', got {self.color!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown preprocessing field(s): {sorted(unknown)}")
        values = dict(data)
        for key in ("input_size", "mean", "std"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def transforms(self):  # -> torchvision.transforms.Compose
        """PIL image (RGB) -> float tensor (3, H, W) ready for the model.

        Example:
            >>> from PIL import Image
            >>> from manet_zoo.preprocessing import Preprocessing
            >>> t = Preprocessing(input_size=(112, 112)).transforms()
            >>> t(Image.new("RGB", (100, 80))).shape
            torch.Size([3, 112, 112])
        """
        from torchvision import transforms as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        steps: list[Any] = [
            T.Lambda(_to_rgb),
            T.Resize(self.input_size, interpolation=mode, antialias=True),
            T.ToTensor(),
        ]
        if self.mean is not None and self.std is not None:
            steps.append(T.Normalize(self.mean, self.std))
        return T.Compose(steps)


def _to_rgb(image: Any) -> Any:
    # A grayscale or RGBA PIL image would give 1 or 4 channels after ToTensor.
    return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image


OFFICIAL = Preprocessing()
"""The official MA-Net preprocessing: 224x224 squash, bilinear, [0, 1], no mean/std."""
