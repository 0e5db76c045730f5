"""The MA-Net architecture: blocks, the model, and the official key map."""

from manet_zoo.models.manet import MANet, check_input_shape

__all__ = ["MANet", "check_input_shape"]
