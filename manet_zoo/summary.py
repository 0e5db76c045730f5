"""Size and cost of an MA-Net: parameters, multiply-adds, output shape of each stage."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from manet_zoo.models.manet import MANet


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summarize` measured, for one input size."""

    num_classes: int
    input_size: int
    parameters: int
    macs: int
    stages: tuple[tuple[str, tuple[int, ...]], ...]

    def __str__(self) -> str:
        rows = [f"MA-Net, {self.num_classes} classes, input 3x{self.input_size}x{self.input_size}"]
        rows += [f"  {name:<28} {'x'.join(map(str, shape))}" for name, shape in self.stages]
        rows.append(f"  parameters {self.parameters:,} ({self.parameters / 1e6:.2f} M)")
        rows.append(f"  multiply-adds {self.macs / 1e9:.3f} G")
        return "\n".join(rows)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, input_size: int = 224) -> int:
    """Multiply-adds of one forward pass on one image, measured by PyTorch's FLOP counter
    (convolutions and linear layers; a multiply-add is two FLOPs)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size, device=_device_of(model)))
    return counter.get_total_flops() // 2


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def summarize(model: MANet | None = None, input_size: int = 224) -> ModelSummary:
    """Measure a model (default: a 7-class MA-Net built on the meta device, which costs
    no memory) at ``input_size``.

    Example:
        >>> from manet_zoo.summary import summarize
        >>> print(summarize().parameters)
        50547214
    """
    if model is None:
        with torch.device("meta"):
            model = MANet(num_classes=7)
    model = model.eval()
    x = torch.zeros(1, 3, input_size, input_size, device=_device_of(model))
    with torch.no_grad():
        stem = model.stem(x)
        features = model.layer2(model.layer1(stem))
        local_map, global_map = model.local_branch(features), model.global_branch(features)
    stages = (
        ("input", tuple(x.shape[1:])),
        ("stem", tuple(stem.shape[1:])),
        ("layer1 + layer2", tuple(features.shape[1:])),
        ("local branch (2x2 mosaic)", tuple(local_map.shape[1:])),
        ("global branch", tuple(global_map.shape[1:])),
        ("logits (fused)", (model.num_classes,)),
    )
    return ModelSummary(
        num_classes=model.num_classes,
        input_size=input_size,
        parameters=count_parameters(model),
        macs=count_macs(model, input_size),
        stages=stages,
    )
