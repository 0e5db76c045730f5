"""Decoding every accepted input to RGB uint8, and refusing the rest with a typed error
that names the input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from manet_zoo.errors import InvalidImageError, ManetZooError
from manet_zoo.images import expand_inputs, iter_image_files, load_image
from tests.predict_helpers import astronaut


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    """A 64 x 48 RGB crop of a real photograph (non-square, to catch transposes)."""
    return np.ascontiguousarray(astronaut()[80:144, 190:238])


def _png_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def test_path_bytes_pil_array_and_tensor_decode_identically(tmp_path, small):
    path = tmp_path / "face.png"
    Image.fromarray(small).save(path)
    tensor = torch.from_numpy(small).permute(2, 0, 1).float() / 255.0
    for value in (str(path), path, path.read_bytes(), Image.open(path), small, tensor):
        decoded = load_image(value)
        assert decoded.dtype == np.uint8 and decoded.shape == (64, 48, 3)
        np.testing.assert_array_equal(decoded, small)


def test_color_order_is_explicit(small):
    bgr = np.ascontiguousarray(small[..., ::-1])
    np.testing.assert_array_equal(load_image(bgr, color="bgr"), small)
    assert not np.array_equal(load_image(bgr), small)  # taken as RGB, as documented
    with pytest.raises(ValueError, match="color"):
        load_image(small, color="BGR ")


def test_exif_orientation_is_applied(tmp_path, small):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(small).save(path, exif=exif)
    decoded = load_image(path)
    assert decoded.shape == (48, 64, 3)
    np.testing.assert_array_equal(decoded, np.rot90(small, k=-1))


def test_grayscale_palette_and_rgba_are_converted(small):
    gray = small.mean(axis=2).round().astype(np.uint8)
    out = load_image(_png_bytes(Image.fromarray(gray)))
    assert out.shape == (64, 48, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)

    few_colours = (small // 64) * 64  # at most 64 colours: a palette holds them exactly
    palette = Image.fromarray(few_colours).quantize(colors=256, method=Image.Quantize.MAXCOVERAGE)
    assert palette.mode == "P"
    np.testing.assert_array_equal(load_image(_png_bytes(palette)), few_colours)

    rgba = np.dstack([small, np.full(small.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0  # transparent top rows
    out = load_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    assert (out[:10] == 255).all(), "transparent pixels are composited over white"
    np.testing.assert_array_equal(out[10:], small[10:])
    np.testing.assert_array_equal(load_image(rgba), out)  # (H, W, 4) arrays: same rule


def test_16_bit_images_are_scaled_not_clipped():
    values = np.linspace(0, 65535, 64 * 48).reshape(64, 48).astype(np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I")
    out = load_image(_png_bytes(image))
    expected = np.round(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert out.max() == 255 and out.min() == 0
    np.testing.assert_array_equal(load_image(values), out)  # uint16 arrays too


def test_cmyk_jpeg_is_converted(small):
    buf = io.BytesIO()
    Image.fromarray(small).convert("CMYK").save(buf, format="JPEG", quality=98)
    out = load_image(buf.getvalue())
    assert out.shape == (64, 48, 3)
    assert np.abs(out.astype(int) - small.astype(int)).mean() < 4


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels (8-bit RGB) but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_from_the_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(20_000, 20_000))  # 400 MP in 100 bytes
    assert bomb.stat().st_size < 200
    with pytest.raises(InvalidImageError, match=r"bomb\.png.*(pixels|bomb)"):
        load_image(bomb)
    with pytest.raises(InvalidImageError, match="more than the limit of 1,000"):
        load_image(np.zeros((40, 40, 3), np.uint8), max_pixels=1000)


def _bad_files(folder: Path, small: np.ndarray) -> dict[str, Path]:
    jpeg = io.BytesIO()
    Image.fromarray(small).save(jpeg, format="JPEG")
    files = {
        "truncated": (folder / "truncated.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) // 3]),
        "text": (folder / "notes.jpg", b"this is not an image\n" * 20),
        "empty": (folder / "empty.png", b""),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}


def test_unreadable_inputs_raise_invalid_image_error_naming_them(tmp_path, small):
    files = _bad_files(tmp_path, small)
    cases = [
        (files["truncated"], "truncated.jpg"),
        (files["text"], "notes.jpg"),
        (files["empty"], "empty.png"),
        (tmp_path / "missing.jpg", "missing.jpg: no such file"),
        (tmp_path, "folder"),
        (b"", "bytes"),
        (b"GIF89a garbage", "bytes"),
        (small.astype(np.float32) / 255, "dtype float32"),
        (small[..., :2], r"shape \(64, 48, 2\)"),
        (np.ascontiguousarray(small.transpose(2, 0, 1)), "channels-first"),
        (torch.rand(3, 8, 8) * 255, r"divide 0-255 values by 255"),
        (torch.full((3, 8, 8), float("nan")), "NaN"),
        (torch.rand(5, 8, 8), r"shape \(5, 8, 8\)"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), "dtype torch.int64"),
        (42, "unsupported input type int"),
    ]
    for value, message in cases:
        with pytest.raises(InvalidImageError, match=message) as info:
            load_image(value)
        assert isinstance(info.value, ValueError) and isinstance(info.value, ManetZooError)
        assert info.value.source in str(info.value)


def test_tensors_and_expand_inputs(tmp_path):
    x = torch.rand(2, 3, 16, 24)
    np.testing.assert_array_equal(
        load_image(x[0]), (x[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    )
    items = expand_inputs([x, np.zeros((4, 4, 3), np.uint8), b"xx"])
    assert [i.source for i in items] == [
        "<tensor #0[0]>",
        "<tensor #0[1]>",
        "<array #1>",
        "<bytes #2>",
    ]
    assert torch.equal(items[1].value, x[1])


def test_folders_recurse_in_sorted_order(tmp_path):
    for name in ("b.png", "a/z.JPG", "a/c.jpeg", "readme.txt", ".hidden.png", ".git/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["b.png", "a/c.jpeg", "a/z.JPG"]
    items = expand_inputs([tmp_path, tmp_path / "readme.txt"])
    assert [Path(i.source).name for i in items] == ["b.png", "c.jpeg", "z.JPG", "readme.txt"]
