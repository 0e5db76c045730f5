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
    # Built on the meta device: its random initialisation would be thrown away at once
    # (for MA-Net that costs a second).
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        device="meta",
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1))
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return fused


def _folded_pairs(module: nn.Module) -> list[tuple[str, str]]:
    return [
        (c, b)
        for c, b in _PAIRS
        if isinstance(getattr(module, c, None), nn.Conv2d)
        and isinstance(getattr(module, b, None), nn.BatchNorm2d)
    ]


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
    targets = [
        (name, module, conv_name, bn_name)
        for name, module in model.named_modules()
        for conv_name, bn_name in _folded_pairs(module)
    ]
    # Copy everything but what folding replaces: cloning those tensors only to drop them
    # would double the time (the memo hands deepcopy None for each of them).
    memo: dict[int, object] = {
        id(getattr(module, attr)): None for _, module, *attrs in targets for attr in attrs
    }
    fused = copy.deepcopy(model, memo)
    for name, module, conv_name, bn_name in targets:
        copied = fused.get_submodule(name)
        setattr(
            copied, conv_name, fold_conv_bn(getattr(module, conv_name), getattr(module, bn_name))
        )
        setattr(copied, bn_name, nn.Identity())
    remaining = [name for name, m in fused.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if remaining:  # a block whose attribute names the pairs above do not cover
        raise RuntimeError(f"BatchNorm layers left unfolded: {remaining}")
    fused.fused = True
    return fused
