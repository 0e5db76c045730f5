"""Inference-only rewrites of MA-Net that keep its outputs.

:func:`fold_batchnorm` folds every BatchNorm into the convolution before it: in eval
mode ``BN(conv(x)) = conv'(x)`` with ``w' = w * g / sqrt(var + eps)`` and
``b' = (b - mean) * g / sqrt(var + eps) + beta``. The folded model computes the same
function (to float rounding) with one pass over memory fewer per convolution.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from manet_zoo.models.manet import MANet

# (convolution attribute, BatchNorm attribute) pairs as they appear in the blocks.
_PAIRS = (("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2"))


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution with bias equal to ``bn(conv(x))`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: MANet) -> MANet:
    """A copy of ``model`` (in eval mode) with every BatchNorm folded into its convolution.

    Raises:
        RuntimeError: the model is in training mode, where BatchNorm normalises with
            batch statistics and cannot be folded.
    """
    if model.training:
        raise RuntimeError(
            "fuse() needs a model in eval mode: in training mode BatchNorm uses batch "
            "statistics and cannot be folded. Call model.eval() first; keep the unfused "
            "model for training or fine-tuning."
        )
    fused = copy.deepcopy(model)
    count = 0
    for module in fused.modules():
        for conv_name, bn_name in _PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fold_conv_bn(conv, bn))
                setattr(module, bn_name, nn.Identity())
                count += 1
    remaining = [name for name, m in fused.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if remaining:  # a block whose attribute names the pairs above do not cover
        raise RuntimeError(f"BatchNorm layers left unfolded: {remaining}")
    fused.fused = True
    return fused
