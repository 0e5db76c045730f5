"""manet-zoo: MA-Net (Zhao, Liu, Wang, IEEE TIP 2021) for facial expression recognition.

Example:
    >>> import torch
    >>> from manet_zoo import manet
    >>> model = manet(num_classes=7).eval()
    >>> local_logits, global_logits = model.forward_branches(torch.rand(2, 3, 112, 112))
"""

from manet_zoo._version import __version__
from manet_zoo.checkpoint import convert_official_checkpoint, load_weights, save_weights
from manet_zoo.errors import (
    CheckpointError,
    DownloadError,
    IntegrityError,
    ManetZooError,
    ManifestError,
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

__all__ = [
    "CheckpointError",
    "DownloadError",
    "IntegrityError",
    "MANet",
    "ManetZooError",
    "ManifestError",
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
    "save_weights",
]
