"""Predicting expressions in photos (``manet_zoo.Predictor``, ``manet_zoo.predict``):
decode -> find faces -> crop -> preprocess -> batched forward -> typed results.

Example:
    >>> import manet_zoo
    >>> predictor = manet_zoo.Predictor("manet_rafdb")                 # doctest: +SKIP
    >>> result = predictor.predict("photo.jpg")                         # doctest: +SKIP
    >>> [(f.label, f.probability, f.box) for f in result.faces]         # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from manet_zoo.errors import InvalidImageError
from manet_zoo.faces import (
    DEFAULT_DETECT_MAX_SIZE,
    DEFAULT_MIN_CONFIDENCE,
    LANDMARK_NAMES,
    Detection,
    FaceDetector,
    align_face,
    crop_box,
    get_detector,
)
from manet_zoo.images import DEFAULT_MAX_PIXELS, Item, describe, expand_inputs, load_image
from manet_zoo.models.manet import MANet
from manet_zoo.preprocessing import Preprocessing
from manet_zoo.runtime import Runner, make_runner

DEFAULT_MODEL = "manet_rafdb"


@dataclass(frozen=True)
class FaceResult:
    """One face and what the model says about it.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in pixels of the (EXIF-rotated) image; the whole image
            when no detector ran.
        landmarks: ``{name: (x, y)}`` for the five points of
            :data:`~manet_zoo.faces.LANDMARK_NAMES`, or ``None`` (no detector, or one
            without landmarks).
        detection_score: the detector's confidence, ``None`` when no detector ran.
        label: the most probable class.
        probability: its probability.
        probabilities: ``{label: probability}`` for every class, in the checkpoint's label
            order; the softmax of the fused logits
            ``fusion_weight * local + (1 - fusion_weight) * global``.
        logits_local, logits_global: each branch's logits, in the same order.
    """

    box: tuple[float, float, float, float]
    landmarks: dict[str, tuple[float, float]] | None
    detection_score: float | None
    label: str
    probability: float
    probabilities: dict[str, float]
    logits_local: tuple[float, ...]
    logits_global: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable values (lists for tuples)."""
        return {
            "box": list(self.box),
            "landmarks": None
            if self.landmarks is None
            else {k: list(v) for k, v in self.landmarks.items()},
            "detection_score": self.detection_score,
            "label": self.label,
            "probability": self.probability,
            "probabilities": dict(self.probabilities),
            "logits_local": list(self.logits_local),
            "logits_global": list(self.logits_global),
        }


@dataclass(frozen=True)
class ImageResult:
    """Everything found in one image.

    Attributes:
        source: the input's name: its path, or e.g. ``<array #2>`` (see
            :func:`manet_zoo.images.describe`).
        width, height: of the decoded image (0 when it could not be read).
        faces: one :class:`FaceResult` per face, largest first; empty when none was found.
        error: why the image could not be read, or ``None``.
    """

    source: str
    width: int
    height: int
    faces: tuple[FaceResult, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
            "error": self.error,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


@dataclass
class PreparedImage:
    """An image after decoding, detection and cropping, before the model.

    ``crops`` holds the model inputs (N, 3, H, W), one per detection; ``faces`` the
    cropped PIL faces at their own resolution when asked for (explanations)."""

    source: str
    width: int
    height: int
    detections: list[Detection] = field(default_factory=list)
    crops: torch.Tensor | None = None
    faces: list[Image.Image] | None = None
    error: str | None = None


class FacePreparer:
    """Decode, detect and crop one input; picklable, so it runs in DataLoader workers."""

    def __init__(
        self,
        preprocessing: Preprocessing,
        detector: FaceDetector | None,
        *,
        color: str = "rgb",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        keep_faces: bool = False,
    ) -> None:
        self.preprocessing = preprocessing
        self.detector = detector if preprocessing.face != "none" else None
        self.color = color
        self.max_pixels = max_pixels
        self.keep_faces = keep_faces
        self.transform = preprocessing.transforms()

    def __call__(self, value: Any, source: str, *, raise_errors: bool = False) -> PreparedImage:
        try:
            image = load_image(value, color=self.color, source=source, max_pixels=self.max_pixels)
        except InvalidImageError as exc:
            if raise_errors:
                raise
            return PreparedImage(source, 0, 0, error=exc.reason)
        height, width = image.shape[:2]
        pil = Image.fromarray(image)
        if self.detector is None:
            detections = [Detection((0.0, 0.0, float(width), float(height)))]
            faces = [pil]
        else:
            detections = self.detector.detect(image)
            faces = [self._cut(pil, d) for d in detections]
        if faces:
            crops = torch.stack([self.transform(face) for face in faces])
        else:
            crops = torch.empty((0, 3, *self.preprocessing.input_size))
        return PreparedImage(
            source, width, height, detections, crops, faces if self.keep_faces else None
        )

    def _cut(self, pil: Image.Image, detection: Detection) -> Image.Image:
        if self.preprocessing.face == "aligned" and detection.landmarks is not None:
            return align_face(pil, detection.landmarks)
        return crop_box(pil, detection.box)


class _PrepareDataset(Dataset):
    def __init__(self, items: list[Item], preparer: FacePreparer) -> None:
        self.items, self.preparer = items, preparer

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> PreparedImage:
        item = self.items[index]
        return self.preparer(item.value, item.source)


def _identity(sample: Any) -> Any:
    return sample


@dataclass
class _Slot:
    prepared: PreparedImage
    logits: list[tuple[torch.Tensor, torch.Tensor] | None]

    @property
    def done(self) -> bool:
        return all(x is not None for x in self.logits)


class Predictor:
    """Finds faces and predicts their expressions, in batches.

    Args:
        model: a :class:`~manet_zoo.MANet`, a zoo name (``"manet_rafdb"``), a local
            ``.safetensors`` path or ``"hf-hub:org/repo[@rev]"``. Its labels and
            preprocessing (input size, face crop policy) come with its weights.
        detector: ``"mtcnn"`` (default), ``"retinaface"``, ``None`` / ``"none"`` (each
            image is already a face crop, e.g. dataset images), or an object with
            ``detect(image)`` (see :mod:`manet_zoo.faces`). Checkpoints
            whose preprocessing says ``face="none"`` never run a detector.
        device: where the model runs (default: CUDA when available, else CPU).
        batch_size: faces per forward pass; faces of all images are batched together.
        precision: ``"fp32"``, ``"bf16"`` (CPUs with AVX512-BF16/AMX, GPUs) or ``"fp16"``
            (GPUs).
        backend: ``"auto"`` (what measured fastest for the device and precision: ONNX
            Runtime for fp32 on a CPU when the ``onnx`` extra is installed, its graph
            exported once per weights and cached; else PyTorch; see
            ``docs/benchmarks.md``),
            ``"torch"`` (BatchNorm folded, channels_last) or ``"onnxruntime"``. All give
            the same outputs.
        compile: ``torch.compile`` the PyTorch path: 8-17% more throughput at batch 16 on
            a CPU, after a compilation of about a minute at the first batch (and at each new
            batch shape); worth it for long runs only.
        min_confidence: detections below this probability are dropped.
        detect_max_size: images whose longer side exceeds this are downscaled for detection.
        num_workers: DataLoader worker processes that decode and detect while the model runs.
        max_pixels: refuse images larger than this (width x height).

    The model is put in eval mode and moved to ``device`` in place.
    """

    def __init__(
        self,
        model: MANet | str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        detector: str | FaceDetector | None = "mtcnn",
        device: str | torch.device | None = None,
        batch_size: int = 32,
        precision: str = "fp32",
        backend: str = "auto",
        compile: bool = False,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        detect_max_size: int = DEFAULT_DETECT_MAX_SIZE,
        num_workers: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = _as_model(model).eval().to(self.device)
        # The fast path: same outputs, picked per device and precision (manet_zoo.runtime).
        self.runner: Runner = make_runner(
            self.model,
            backend=backend,
            precision=precision,
            device=self.device,
            compile=compile,
        )
        self.backend = self.runner.backend
        self.labels = _labels_of(self.model)
        self.preprocessing: Preprocessing = self.model.preprocessing
        self.batch_size = int(batch_size)
        self.precision = precision
        self.num_workers = int(num_workers)
        self.max_pixels = int(max_pixels)
        # Forked workers cannot use CUDA: with workers, detection runs on the CPU.
        detector_device = self.device if self.num_workers == 0 else torch.device("cpu")
        self.detector = get_detector(
            detector,
            min_confidence=min_confidence,
            max_size=detect_max_size,
            device=detector_device,
        )

    def preparer(self, *, color: str = "rgb", keep_faces: bool = False) -> FacePreparer:
        """The decode-detect-crop step this predictor uses."""
        return FacePreparer(
            self.preprocessing,
            self.detector,
            color=color,
            max_pixels=self.max_pixels,
            keep_faces=keep_faces,
        )

    def predict(
        self, images: Any, *, color: str = "rgb", progress: bool = False
    ) -> ImageResult | list[ImageResult]:
        """Faces and expressions in one image or many.

        Args:
            images: one input (path, bytes, PIL image, array, CHW tensor), or a list of
                them, a folder (walked recursively) or a BCHW tensor.
            color: channel order of numpy arrays: ``"rgb"`` or ``"bgr"``.
            progress: show a progress bar.

        Returns:
            For one input, its :class:`ImageResult`; an unreadable input raises
            :class:`~manet_zoo.errors.InvalidImageError`. For a list, folder or batch, a
            list of results in input order; an unreadable item gets a result whose
            ``error`` says why, and the others are predicted as usual.
        """
        if _is_single(images):
            prepared = self.preparer(color=color)(images, describe(images), raise_errors=True)
            return next(iter(self.run(iter([prepared]))))
        return list(self.iter_predict(images, color=color, progress=progress))

    def iter_predict(
        self, images: Any, *, color: str = "rgb", progress: bool = False
    ) -> Iterator[ImageResult]:
        """Like :meth:`predict` for many images, yielding results in input order as they are
        ready: images stream through a DataLoader (``num_workers`` processes decode and
        detect), their faces through the model in batches of ``batch_size``."""
        items = expand_inputs(images)
        loader = DataLoader(
            _PrepareDataset(items, self.preparer(color=color)),
            batch_size=None,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_identity,
        )
        if not progress:
            yield from self.run(loader)
            return
        from tqdm.auto import tqdm

        with tqdm(total=len(items), unit="image", desc="manet-zoo predict") as bar:
            for result in self.run(loader):
                bar.update(1)
                yield result

    def run(self, prepared: Iterable[PreparedImage]) -> Iterator[ImageResult]:
        """Prepared images -> results, in order; all faces go through the model in batches
        of ``batch_size``, across image boundaries."""
        pending: deque[_Slot] = deque()
        queue: list[tuple[_Slot, int]] = []
        for image in prepared:
            count = 0 if image.crops is None else len(image.crops)
            slot = _Slot(image, [None] * count)
            pending.append(slot)
            queue.extend((slot, i) for i in range(count))
            while len(queue) >= self.batch_size:
                self._forward_queued(queue[: self.batch_size])
                del queue[: self.batch_size]
            while pending and pending[0].done:
                yield self._result(pending.popleft())
        for start in range(0, len(queue), self.batch_size):
            self._forward_queued(queue[start : start + self.batch_size])
        while pending:
            yield self._result(pending.popleft())

    def forward_branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(local, global) logits of a batch of model inputs, as float32 on the CPU."""
        return self.runner(x)

    def _forward_queued(self, entries: list[tuple[_Slot, int]]) -> None:
        crops = [slot.prepared.crops[i] for slot, i in entries]  # type: ignore[index]
        local, global_ = self.forward_branches(torch.stack(crops))
        for (slot, i), row_local, row_global in zip(entries, local, global_, strict=True):
            slot.logits[i] = (row_local, row_global)

    def _result(self, slot: _Slot) -> ImageResult:
        image = slot.prepared
        faces = tuple(
            self.face_result(detection, local, global_)
            for detection, (local, global_) in zip(
                image.detections,
                slot.logits,  # type: ignore[arg-type]
                strict=True,
            )
        )
        return ImageResult(image.source, image.width, image.height, faces, image.error)

    def face_result(
        self, detection: Detection, local: torch.Tensor, global_: torch.Tensor
    ) -> FaceResult:
        """A :class:`FaceResult` from a detection and its two rows of logits."""
        probs = torch.softmax(self.model.fuse_logits(local, global_), dim=-1).tolist()
        best = int(np.argmax(probs))
        landmarks = None
        if detection.landmarks is not None:
            landmarks = dict(zip(LANDMARK_NAMES, detection.landmarks, strict=True))
        return FaceResult(
            box=tuple(float(v) for v in detection.box),  # type: ignore[arg-type]
            landmarks=landmarks,
            detection_score=detection.score,
            label=self.labels[best],
            probability=float(probs[best]),
            probabilities=dict(zip(self.labels, map(float, probs), strict=True)),
            logits_local=tuple(local.tolist()),
            logits_global=tuple(global_.tolist()),
        )


def _is_single(images: Any) -> bool:
    if isinstance(images, (list, tuple)):
        return False
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return False
    return not (isinstance(images, (str, os.PathLike)) and os.path.isdir(images))


def _as_model(model: Any) -> MANet:
    if isinstance(model, MANet):
        return model
    if isinstance(model, (str, os.PathLike)):
        from manet_zoo.factories import load

        return load(model)
    raise TypeError(
        f"model must be a MANet, a zoo name or a weights path, got {type(model).__name__}"
    )


def _labels_of(model: MANet) -> tuple[str, ...]:
    if model.labels is not None:
        if len(model.labels) != model.num_classes:
            raise ValueError(
                f"the model has {model.num_classes} classes but {len(model.labels)} labels"
            )
        return tuple(model.labels)
    warnings.warn(
        f"{model.source or 'The model'} carries no labels, so results name the classes "
        f"class_0 .. class_{model.num_classes - 1}. Save weights with "
        "manet_zoo.save_weights(..., labels=[...]) so that their order travels with them.",
        stacklevel=3,
    )
    return tuple(f"class_{i}" for i in range(model.num_classes))


def predict(
    images: Any,
    model: MANet | str | os.PathLike[str] | Predictor = DEFAULT_MODEL,
    *,
    color: str = "rgb",
    progress: bool = False,
    **kwargs: Any,
) -> ImageResult | list[ImageResult]:
    """Faces and expressions in ``images``: ``Predictor(model, **kwargs).predict(images)``.

    Build a :class:`Predictor` once to predict many times: this loads the model each call.

    Example:
        >>> import manet_zoo
        >>> manet_zoo.predict("photo.jpg").faces[0].probabilities  # doctest: +SKIP
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model, **kwargs)
    return predictor.predict(images, color=color, progress=progress)
