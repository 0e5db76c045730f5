"""Small, cached builders for the prediction tests: a 112 px MA-Net with fixed random
weights (no trained checkpoint exists, so no test claims an emotion is right), and real
photographs shipped by scikit-image.

Where the faces are in ``skimage.data.astronaut()`` (512 x 512, Eileen Collins) was read
off the picture by hand, not from a detector: eyes near (205, 100) and (245, 100), mouth
near (225, 142), the face within x 170-285, y 55-185.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

LABELS = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
ASTRONAUT_EYES = ((205, 100), (245, 100))
ASTRONAUT_MOUTH = (225, 142)
ASTRONAUT_FACE_REGION = (170, 55, 285, 185)  # x1, y1, x2, y2
TWO_FACES_CENTRES = ((150, 175), (525, 180))  # where two_faces() put the two faces


@functools.cache
def _tmp() -> Path:
    path = Path(tempfile.mkdtemp(prefix="manet-zoo-predict-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def weights_file() -> Path:
    """Seeded random 7-class weights saved with labels and a 112 px preprocessing."""
    from manet_zoo import manet, save_weights
    from manet_zoo.preprocessing import Preprocessing

    torch.manual_seed(0)
    state_dict = manet(num_classes=7).state_dict()
    return save_weights(
        state_dict,
        _tmp() / "random112.safetensors",
        labels=list(LABELS),
        preprocessing=Preprocessing(input_size=(112, 112)),
    )


@functools.cache
def model():
    """The weights of :func:`weights_file`, loaded once (eval mode, CPU)."""
    from manet_zoo import manet

    return manet(weights=weights_file())


@functools.cache
def predictor(detector: str | None = "mtcnn"):
    """A Predictor of :func:`model`; detection on images downscaled to 320 px (faster)."""
    from manet_zoo import Predictor

    return Predictor(model(), detector=detector, device="cpu", batch_size=8, detect_max_size=320)


@functools.cache
def astronaut_result():
    """``predictor().predict(astronaut())``, computed once."""
    return predictor().predict(astronaut())


@functools.cache
def two_faces_result():
    """``predictor().predict(two_faces())``, computed once."""
    return predictor().predict(two_faces())


@functools.cache
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@functools.cache
def coffee() -> np.ndarray:
    from skimage import data

    return data.coffee()


@functools.cache
def chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()


@functools.cache
def lfw_faces(count: int = 6) -> tuple[np.ndarray, ...]:
    """The first ``count`` of lfw_subset's 100 faces, 25 x 25 grayscale uint8."""
    from skimage import data

    faces = data.lfw_subset()[:count]
    return tuple(np.round(f * 255).astype(np.uint8) for f in faces)


def astronaut_face_patch() -> Image.Image:
    """The astronaut's head and some background around it (170 x 200 px)."""
    return Image.fromarray(astronaut()).crop((140, 20, 310, 220))


@functools.cache
def two_faces() -> np.ndarray:
    """A 720 x 360 composite on a blurred coffee background: the astronaut's head 1.3x
    larger on the left (face centre near :data:`TWO_FACES_CENTRES` [0]) and mirrored at
    its own size on the right (near [1])."""
    background = Image.fromarray(coffee()).resize((720, 360)).reduce(4).resize((720, 360))
    patch = astronaut_face_patch()
    background.paste(patch.resize((221, 260)), (40, 50))
    background.paste(patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (440, 80))
    return np.asarray(background)


def contains(box, point) -> bool:
    x1, y1, x2, y2 = box
    return x1 <= point[0] <= x2 and y1 <= point[1] <= y2
