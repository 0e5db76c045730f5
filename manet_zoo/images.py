"""Any image input -> an RGB ``uint8`` array of shape (H, W, 3). Nothing else in manet-zoo
decodes images.

Accepted inputs (see ``docs/predict.md``):

* a path (``str`` or ``os.PathLike``) or the file's ``bytes``: decoded with Pillow,
  EXIF orientation applied, every mode (grayscale, RGBA, palette, 16-bit, CMYK ...)
  converted to 8-bit RGB;
* a ``PIL.Image.Image``: the same conversions;
* a ``numpy`` array (H, W, 3) ``uint8`` (also (H, W) grayscale, (H, W, 4) with alpha,
  ``uint16``), whose channel order is **stated**, never guessed: ``color="rgb"`` (the
  default) or ``color="bgr"`` (OpenCV);
* a ``torch`` tensor (3, H, W) or (B, 3, H, W), float in [0, 1] (or ``uint8``), RGB as in
  torchvision; a batch counts as B images.

Transparent pixels are composited over white. Anything that cannot be read raises
:class:`~manet_zoo.errors.InvalidImageError` naming the input.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from manet_zoo.errors import InvalidImageError

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor

COLOR_ORDERS = ("rgb", "bgr")

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width x height) decoded: 100 megapixels, ~300 MB as RGB. Files that
claim more are refused from their header, before any pixel is decoded (decompression
bombs). Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS`` x 2) also applies to files."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
     ".pgm", ".pbm", ".pnm", ".jfif", ".tga", ".ico"}
)  # fmt: skip
"""File name endings taken from a folder (any case). Files named on their own are
always tried, whatever their name."""

_TENSOR_TOLERANCE = 1e-3


class Item(NamedTuple):
    """One image to process and the name it has in results."""

    value: Any
    source: str


def expand_inputs(images: Any) -> list[Item]:
    """Flatten the inputs of ``predict`` into single images with their source names.

    A list or tuple is taken item by item; a folder is walked recursively (sorted, hidden
    entries skipped, only :data:`IMAGE_SUFFIXES`); a (B, 3, H, W) tensor gives B images.
    Paths are named by their path, other inputs by kind and position, e.g. ``<array #2>``.
    """
    values = list(images) if isinstance(images, (list, tuple)) else [images]
    items: list[Item] = []
    for index, value in enumerate(values):
        if isinstance(value, (str, os.PathLike)):
            path = Path(value)
            if path.is_dir():
                items.extend(Item(p, str(p)) for p in iter_image_files(path))
            else:
                items.append(Item(value, os.fspath(value)))
        elif isinstance(value, torch.Tensor) and value.ndim == 4:
            items.extend(Item(t, f"<tensor #{index}[{b}]>") for b, t in enumerate(value))
        else:
            items.append(Item(value, describe(value, index)))
    return items


def iter_image_files(folder: Path) -> Iterator[Path]:
    """Image files under ``folder``, recursively, in sorted order, hidden entries skipped."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name


def describe(value: Any, index: int = 0) -> str:
    """How an input is named in results and error messages."""
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, Image.Image) and getattr(value, "filename", ""):
        return str(value.filename)
    kind = {
        bytes: "bytes",
        bytearray: "bytes",
        memoryview: "bytes",
        np.ndarray: "array",
        torch.Tensor: "tensor",
    }.get(type(value))
    if kind is None:
        kind = "PIL.Image" if isinstance(value, Image.Image) else type(value).__name__
    return f"<{kind} #{index}>"


def load_image(
    value: ImageInput,
    *,
    color: str = "rgb",
    source: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode or convert one input to a contiguous RGB ``uint8`` array (H, W, 3).

    Args:
        value: a path, bytes, PIL image, array or tensor (see the module docstring).
        color: channel order of a numpy array: ``"rgb"`` or ``"bgr"``. Ignored for other
            inputs, whose order is known.
        source: the name used in error messages (default: :func:`describe`).
        max_pixels: refuse larger images (width x height).

    Raises:
        InvalidImageError: the input cannot be read, has the wrong shape or type, or is
            too large.

    Example:
        >>> import numpy as np
        >>> from manet_zoo.images import load_image
        >>> bgr = np.zeros((4, 6, 3), np.uint8); bgr[..., 0] = 255  # blue in OpenCV order
        >>> load_image(bgr, color="bgr")[0, 0].tolist()
        [0, 0, 255]
    """
    if color not in COLOR_ORDERS:
        raise ValueError(f"color must be one of {COLOR_ORDERS}, got {color!r}")
    source = describe(value) if source is None else source
    if isinstance(value, (str, os.PathLike)):
        array = _decode_file(Path(value), source, max_pixels)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        if not len(value):
            raise InvalidImageError(source, "empty bytes, not an image")
        array = _decode(io.BytesIO(bytes(value)), source, max_pixels)
    elif isinstance(value, Image.Image):
        _check_size(value.width, value.height, source, max_pixels)
        array = _pil_to_rgb(value, source)
    elif isinstance(value, np.ndarray):
        array = _from_array(value, color, source)
    elif isinstance(value, torch.Tensor):
        array = _from_tensor(value, source)
    else:
        raise InvalidImageError(
            source,
            f"unsupported input type {type(value).__name__}; expected a path, bytes, a "
            "PIL.Image, an HxWx3 uint8 array or a CHW/BCHW float tensor in [0, 1]",
        )
    _check_size(array.shape[1], array.shape[0], source, max_pixels)
    return array


def _check_size(width: int, height: int, source: str, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(source, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImageError(
            source,
            f"image is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,} (a protection against decompression bombs; raise max_pixels "
            "if you trust the file)",
        )


def _decode_file(path: Path, source: str, max_pixels: int) -> np.ndarray:
    if path.is_dir():
        raise InvalidImageError(source, "is a folder, not an image file")
    if not path.is_file():
        raise InvalidImageError(source, "no such file")
    if path.stat().st_size == 0:
        raise InvalidImageError(source, "empty file, not an image")
    try:
        with open(path, "rb") as f:
            return _decode(f, source, max_pixels)
    except OSError as exc:  # permissions and the like; decoding errors are handled inside
        raise InvalidImageError(source, f"cannot read the file ({exc})") from exc


def _decode(fp: Any, source: str, max_pixels: int) -> np.ndarray:
    with warnings.catch_warnings():
        # Our own limit is checked below from the header; Pillow's warning adds nothing.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(fp)
        except Image.DecompressionBombError as exc:
            raise InvalidImageError(source, f"refused as a decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise InvalidImageError(source, "not an image Pillow can read") from exc
        except Exception as exc:  # Pillow raises many types on malformed headers
            raise InvalidImageError(source, f"not a readable image ({_reason(exc)})") from exc
        _check_size(image.width, image.height, source, max_pixels)
        try:
            image.load()
        except Exception as exc:  # truncated or corrupt data
            raise InvalidImageError(source, f"cannot decode the image ({_reason(exc)})") from exc
    return _pil_to_rgb(image, source)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _pil_to_rgb(image: Image.Image, source: str) -> np.ndarray:
    try:
        transposed = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the picture
        transposed = None
    image = transposed if transposed is not None else image
    try:
        if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            # 16-bit (or 32-bit integer) pixels: scale the 16-bit range to 8 bits.
            gray = np.asarray(image).astype(np.float64)
            return _gray_to_rgb(np.clip(np.round(gray / 257.0), 0, 255).astype(np.uint8))
        if image.mode == "F":
            data = np.asarray(image, dtype=np.float64)
            scale = 255.0 if np.nanmax(data, initial=0.0) <= 1.0 else 1.0
            gray = np.clip(np.round(np.nan_to_num(data) * scale), 0, 255).astype(np.uint8)
            return _gray_to_rgb(gray)
        has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            image.mode == "P" and "transparency" in image.info
        )
        if has_alpha:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba).convert("RGB")
        elif image.mode != "RGB":
            image = image.convert("RGB")
        return np.array(image, dtype=np.uint8)
    except Exception as exc:
        raise InvalidImageError(
            source, f"cannot convert mode {image.mode!r} to RGB ({_reason(exc)})"
        ) from exc


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))


def _from_array(array: np.ndarray, color: str, source: str) -> np.ndarray:
    if array.dtype == np.uint16:
        array = np.round(array / 257.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise InvalidImageError(
            source,
            f"array of dtype {array.dtype}; expected uint8 (0-255). Convert with "
            "(a * 255).round().astype('uint8') if it holds [0, 1] values, or pass a torch "
            "tensor in [0, 1]",
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return _gray_to_rgb(array)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = " (it looks channels-first: use a.transpose(1, 2, 0))"
        raise InvalidImageError(
            source, f"array of shape {array.shape}; expected (H, W, 3), (H, W, 4) or (H, W){hint}"
        )
    rgb = array[..., :3][..., ::-1] if color == "bgr" else array[..., :3]
    if array.shape[2] == 4:
        alpha = array[..., 3:].astype(np.float32) / 255.0
        rgb = np.round(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def _from_tensor(tensor: torch.Tensor, source: str) -> np.ndarray:
    t = tensor.detach().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise InvalidImageError(
            source, f"tensor of shape {tuple(tensor.shape)}; expected (3, H, W) or (B, 3, H, W)"
        )
    if t.dtype == torch.uint8:
        array = t.permute(1, 2, 0).numpy()
    elif t.is_floating_point():
        t = t.float()
        if not torch.isfinite(t).all():
            raise InvalidImageError(source, "tensor holds NaN or infinite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < -_TENSOR_TOLERANCE or hi > 1.0 + _TENSOR_TOLERANCE:
            raise InvalidImageError(
                source,
                f"tensor values span [{lo:.3g}, {hi:.3g}]; expected RGB in [0, 1] without "
                "mean/std normalisation (divide 0-255 values by 255)",
            )
        array = (t.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    else:
        raise InvalidImageError(
            source, f"tensor of dtype {t.dtype}; expected float in [0, 1] or uint8"
        )
    if array.shape[2] == 1:
        return _gray_to_rgb(array[..., 0])
    return np.ascontiguousarray(array)
