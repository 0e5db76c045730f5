"""Pictures of results: boxes, landmarks and labels drawn on photos, heatmaps laid over
faces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from manet_zoo.predictor import ImageResult

BOX_COLOR = (0, 255, 0)
LANDMARK_COLOR = (255, 0, 255)
TEXT_COLOR = (0, 0, 0)


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` pixels (its fixed bitmap font on old Pillow)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def annotate(image: np.ndarray | Image.Image, result: ImageResult) -> Image.Image:
    """A copy of ``image`` (RGB) with each face's box, landmarks and "label probability"."""
    pil = (image if isinstance(image, Image.Image) else Image.fromarray(image)).convert("RGB")
    pil = pil.copy()
    draw = ImageDraw.Draw(pil)
    line = max(2, round(min(pil.size) / 200))
    text_font = font(max(12, round(min(pil.size) / 30)))
    for face in result.faces:
        x1, y1, x2, y2 = face.box
        draw.rectangle((x1, y1, x2, y2), outline=BOX_COLOR, width=line)
        for x, y in (face.landmarks or {}).values():
            draw.ellipse((x - line, y - line, x + line, y + line), fill=LANDMARK_COLOR)
        text = f"{face.label} {face.probability:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=text_font)
        height = bottom - top + 2 * line
        y_text = y1 - height if y1 - height >= 0 else y1
        draw.rectangle((x1, y_text, x1 + right - left + 2 * line, y_text + height), fill=BOX_COLOR)
        draw.text((x1 + line - left, y_text + line - top), text, fill=TEXT_COLOR, font=text_font)
    return pil


def output_path(source: str | os.PathLike[str], out_dir: Path, base: Path) -> Path:
    """Where the picture of ``source`` goes under ``out_dir``: its path relative to ``base``
    (the common folder of what was asked for), so that names never collide."""
    path = Path(source).resolve()
    try:
        relative = path.relative_to(base)
    except ValueError:
        relative = Path(path.name)
    return out_dir / relative


def save_image(image: Image.Image, path: Path) -> Path:
    """Save in the format the name implies; add ``.png`` when Pillow cannot write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        image.save(path)
    except (KeyError, ValueError, OSError):
        path = path.with_name(path.name + ".png")
        image.save(path)
    return path


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H, W) -> "jet" colours, uint8 (H, W, 3): blue (0) to red (1)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None]
    channels = np.array([3.0, 2.0, 1.0], dtype=np.float32)  # centres of red, green, blue
    rgb = np.clip(1.5 - np.abs(4.0 * v - channels), 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def overlay(face: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``face`` (H, W, 3) uint8 blended with the colour-mapped ``heat`` (H, W) in [0, 1]."""
    if face.shape[:2] != heat.shape:
        raise ValueError(f"face {face.shape[:2]} and heatmap {heat.shape} differ in size")
    mixed = (1.0 - alpha) * face.astype(np.float32) + alpha * colormap(heat).astype(np.float32)
    return np.round(mixed).astype(np.uint8)


def captioned_row(panels: list[np.ndarray], captions: list[str]) -> Image.Image:
    """Equal-sized panels side by side, each with a caption underneath."""
    height, width = panels[0].shape[:2]
    text_font = font(max(10, width // 14))
    caption_h = max(14, width // 14) + 6
    row = Image.new("RGB", (width * len(panels), height + caption_h), (255, 255, 255))
    draw = ImageDraw.Draw(row)
    for i, (panel, caption) in enumerate(zip(panels, captions, strict=True)):
        row.paste(Image.fromarray(panel), (i * width, 0))
        draw.text((i * width + 3, height + 3), caption, fill=(0, 0, 0), font=text_font)
    return row


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    """Images one under another, left-aligned, on white."""
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows)), (255, 255, 255))
    top = 0
    for r in rows:
        out.paste(r, (0, top))
        top += r.height
    return out
