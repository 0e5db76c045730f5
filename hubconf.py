"""torch.hub entry points for manet-zoo.

    >>> import torch
    >>> model = torch.hub.load("<owner>/manet-zoo", "manet_rafdb")      # doctest: +SKIP
    >>> model = torch.hub.load("path/to/manet-zoo", "manet", source="local", num_classes=7)
    ...                                                                  # doctest: +SKIP

Every entry point is the factory of the same name in ``manet_zoo``: published weights are
downloaded through huggingface_hub and verified by the sha256 in ``weights_manifest.json``.
"""

dependencies = ["torch", "torchvision", "huggingface_hub", "safetensors", "numpy", "PIL"]

from manet_zoo.factories import (  # noqa: E402, F401
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
