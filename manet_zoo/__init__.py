"""manet-zoo: MA-Net (Zhao, Liu, Wang, IEEE TIP 2021) for facial expression recognition.

Example:
    >>> import torch
    >>> from manet_zoo import manet
    >>> model = manet(num_classes=7).eval()
    >>> local_logits, global_logits = model.forward_branches(torch.rand(2, 3, 112, 112))
    >>> import manet_zoo
    >>> results = manet_zoo.predict("photo.jpg", model="mine.safetensors")  # doctest: +SKIP

Prediction and explanations (``Predictor``, ``predict``, ``explain`` and their result
types) are imported on first use, so ``import manet_zoo`` stays light.
"""

from typing import Any

from manet_zoo._version import __version__
from manet_zoo.checkpoint import convert_official_checkpoint, load_weights, save_weights
from manet_zoo.errors import (
    CheckpointError,
    DownloadError,
    IntegrityError,
    InvalidImageError,
    ManetZooError,
    ManifestError,
    MissingDependencyError,
    StateDictMismatchError,
    UnknownModelError,
    UnsafeCheckpointError,
    WeightsNotPublishedError,
    WeightsUnavailableOfflineError,
)
from manet_zoo.factories import (
    create_model,
    load,
    manet,
    manet_affectnet7,
    manet_affectnet8,
    manet_caers,
    manet_fedro,
    manet_fer2013,
    manet_msceleb,
    manet_rafdb,
    manet_sfew,
)
from manet_zoo.models.manet import MANet
from manet_zoo.preprocessing import Preprocessing
from manet_zoo.weights import Weights, get_weights, list_models

_LAZY = {
    "Predictor": "manet_zoo.predictor",
    "predict": "manet_zoo.predictor",
    "FaceResult": "manet_zoo.predictor",
    "ImageResult": "manet_zoo.predictor",
    "explain": "manet_zoo.explanations",
    "Explanation": "manet_zoo.explanations",
    "Detection": "manet_zoo.faces",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'manet_zoo' has no attribute {name!r}")


__all__ = [
    "CheckpointError",
    "Detection",
    "DownloadError",
    "Explanation",
    "FaceResult",
    "ImageResult",
    "IntegrityError",
    "InvalidImageError",
    "MANet",
    "ManetZooError",
    "ManifestError",
    "MissingDependencyError",
    "Predictor",
    "Preprocessing",
    "StateDictMismatchError",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "Weights",
    "WeightsNotPublishedError",
    "WeightsUnavailableOfflineError",
    "__version__",
    "convert_official_checkpoint",
    "create_model",
    "explain",
    "get_weights",
    "list_models",
    "load",
    "load_weights",
    "manet",
    "manet_affectnet7",
    "manet_affectnet8",
    "manet_caers",
    "manet_fedro",
    "manet_fer2013",
    "manet_msceleb",
    "manet_rafdb",
    "manet_sfew",
    "predict",
    "save_weights",
]
