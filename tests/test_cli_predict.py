"""``manet-zoo predict`` and ``manet-zoo explain`` on real files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from manet_zoo.cli import main
from manet_zoo.draw import BOX_COLOR
from tests.predict_helpers import LABELS, TWO_FACES_CENTRES, astronaut, coffee, contains, two_faces
from tests.predict_helpers import weights_file as _weights_file


@pytest.fixture(scope="module")
def weights() -> str:
    return str(_weights_file())


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of mixed good and bad files, with a subfolder."""
    root = tmp_path_factory.mktemp("photos")
    small = Image.fromarray(astronaut()).resize((256, 256))
    small.save(root / "astronaut.png")
    (root / "more").mkdir()
    Image.fromarray(two_faces()).save(root / "more" / "two.jpg", quality=95)
    Image.fromarray(coffee()).resize((300, 200)).save(root / "coffee.png")
    jpeg = io.BytesIO()
    small.save(jpeg, format="JPEG")
    (root / "more" / "truncated.jpg").write_bytes(jpeg.getvalue()[:2000])
    (root / "notes.jpg").write_text("not an image\n")
    (root / "empty.png").write_bytes(b"")
    (root / "readme.txt").write_text("skipped: not an image name\n")
    return root


GOOD = {"astronaut.png": 1, "coffee.png": 0, "more/two.jpg": 2}
BAD = {"empty.png", "notes.jpg", "more/truncated.jpg"}


def _by_name(results: list[dict], root: Path) -> dict[str, dict]:
    return {Path(r["source"]).relative_to(root).as_posix(): r for r in results}


def test_predict_folder_reports_every_item_as_json(photos, weights, capsys):
    code = main(["predict", str(photos), "--weights", weights, "--json", "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 1, "some items failed"
    document = json.loads(out)
    assert document["labels"] == list(LABELS)
    assert document["preprocessing"]["input_size"] == [112, 112]
    results = _by_name(document["results"], photos)
    assert set(results) == set(GOOD) | BAD  # readme.txt is not an image name
    for name, count in GOOD.items():
        assert results[name]["error"] is None and len(results[name]["faces"]) == count
    for name in BAD:
        assert results[name]["error"] and results[name]["faces"] == []
        assert f"{name}: error:" in err.replace(str(photos) + "/", "")
    face = results["astronaut.png"]["faces"][0]
    assert contains(face["box"], (112, 50))  # her face, at half the original size
    assert list(face["probabilities"]) == list(LABELS)
    assert face["label"] in LABELS and len(face["logits_global"]) == 7
    big, small = results["more/two.jpg"]["faces"]
    assert contains(big["box"], TWO_FACES_CENTRES[0]) and contains(
        small["box"], TWO_FACES_CENTRES[1]
    )
    assert "6 image(s), 3 face(s), 3 failed" in err


def test_predict_csv_and_annotate(photos, weights, tmp_path, capsys):
    good = [str(photos / name) for name in GOOD]
    out_dir = tmp_path / "annotated"
    code = main(["predict", *good, "--weights", weights, "--csv", "--annotate", str(out_dir)])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [Path(r["source"]).name for r in rows] == [
        "astronaut.png",
        "coffee.png",
        "two.jpg",
        "two.jpg",
    ]
    assert [r["face"] for r in rows] == ["0", "", "0", "1"]
    first = rows[0]
    assert first["label"] in LABELS
    probabilities = [float(first[f"p_{label}"]) for label in LABELS]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert float(first["probability"]) == max(probabilities)

    # Annotated copies keep the folder structure, size and untouched pixels.
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.*"))
    assert written == ["astronaut.png", "coffee.png", "more/two.jpg"]
    original = np.asarray(Image.open(photos / "astronaut.png").convert("RGB"))
    drawn = np.asarray(Image.open(out_dir / "astronaut.png").convert("RGB"))
    assert drawn.shape == original.shape
    x1, y1, y2 = (round(float(first[k])) for k in ("x1", "y1", "y2"))
    assert tuple(drawn[(y1 + y2) // 2, x1]) == BOX_COLOR  # the box's left edge
    np.testing.assert_array_equal(drawn[200:, :], original[200:, :])  # far from the face
    coffee_in, coffee_out = (np.asarray(Image.open(d / "coffee.png")) for d in (photos, out_dir))
    np.testing.assert_array_equal(coffee_in, coffee_out)  # no face: nothing drawn


def test_predict_face_crops_as_text(tmp_path, weights, capsys):
    from tests.predict_helpers import lfw_faces

    for i, face in enumerate(lfw_faces(3)):
        Image.fromarray(face).save(tmp_path / f"lfw{i}.png")
    code = main(["predict", str(tmp_path), "--weights", weights, "--detector", "none"])
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"{tmp_path / f'lfw{i}.png'}: 1 face(s): ")
        assert line.endswith("at (0, 0, 25, 25)")
    assert "3 image(s), 3 face(s), 0 failed" in err


def test_predict_errors_are_one_line(tmp_path, weights, capsys):
    assert main(["predict", str(tmp_path), "--weights", weights, "--detector", "none"]) == 1
    assert "no image found in" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "x.png"), "--model", "manet_rafdb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("manet-zoo predict: error:") and "manet_rafdb" in err


def test_explain_writes_the_face_with_both_overlays(photos, weights, tmp_path, capsys):
    out = tmp_path / "cam.png"
    code = main(["explain", str(photos / "astronaut.png"), "--out", str(out), "--weights", weights])
    assert code == 0 and "wrote" in capsys.readouterr().out
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape[1] == 3 * 112 and 112 < picture.shape[0] < 2 * 112
    face, local, global_ = (picture[:112, i * 112 : (i + 1) * 112].astype(int) for i in range(3))
    assert np.abs(local - face).mean() > 10 and np.abs(global_ - face).mean() > 10

    nothing = tmp_path / "none.png"
    assert (
        main(["explain", str(photos / "coffee.png"), "--out", str(nothing), "--weights", weights])
        == 1
    )
    assert "no face found" in capsys.readouterr().err and not nothing.exists()
    assert (
        main(["explain", str(photos / "notes.jpg"), "--out", str(nothing), "--weights", weights])
        == 1
    )
    assert "notes.jpg" in capsys.readouterr().err
