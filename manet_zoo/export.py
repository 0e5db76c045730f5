"""Export MA-Net to ONNX, TorchScript or a ``torch.export`` program.

Every exported graph takes ``image`` (N x 3 x H x W, RGB in [0, 1], N dynamic) and
returns ``local_logits``, ``global_logits`` and the fused ``logits``. BatchNorm is folded
first (same outputs, faster graph). ONNX files carry the labels, preprocessing and
fusion weight in their metadata, so they travel with the graph.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from manet_zoo._version import __version__
from manet_zoo.models.manet import MANet

ExportFormat = Literal["onnx", "torchscript", "exported-program"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "exported-program")
OUTPUT_NAMES = ("local_logits", "global_logits", "logits")
DEFAULT_OPSET = 17


class BranchOutputs(nn.Module):
    """Wraps MA-Net so a graph returns both branches' logits and the fused logits."""

    def __init__(self, model: MANet) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        local, glob = self.model.forward_branches(image)
        return local, glob, self.model.fuse_logits(local, glob)


def _prepared(model: MANet) -> BranchOutputs:
    model = model.eval()
    return BranchOutputs(model if model.fused else model.fuse()).eval()


def _example(model: MANet, input_size: tuple[int, int] | None, batch: int = 2) -> Tensor:
    h, w = input_size or model.preprocessing.input_size
    device = next(model.parameters()).device
    return torch.rand(batch, 3, h, w, device=device)


def onnx_bytes(
    model: MANet, *, input_size: tuple[int, int] | None = None, opset: int = DEFAULT_OPSET
) -> bytes:
    """The ONNX graph of ``model`` (dynamic batch axis, fixed H x W) as bytes."""
    wrapper = _prepared(model)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about the Python-side input-shape check; H and W are fixed.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (_example(model, input_size),),
            buffer,
            input_names=["image"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
            opset_version=opset,
            dynamo=False,
        )
    return _with_metadata(buffer.getvalue(), model)


def _with_metadata(graph: bytes, model: MANet) -> bytes:
    try:
        import onnx
    except ImportError:  # the graph works without its metadata; ONNX Runtime ignores it
        return graph
    proto = onnx.load_from_string(graph)
    meta = {
        "manet_zoo.version": __version__,
        "manet_zoo.num_classes": str(model.num_classes),
        "manet_zoo.fusion_weight": str(model.fusion_weight),
        "manet_zoo.preprocessing": model.preprocessing.to_json(),
    }
    if model.labels is not None:
        meta["manet_zoo.labels"] = json.dumps(list(model.labels))
    if model.source:
        meta["manet_zoo.source"] = model.source
    for key, value in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    return proto.SerializeToString()


def export(
    model: MANet,
    path: str | os.PathLike[str],
    format: ExportFormat = "onnx",
    *,
    input_size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``model`` as ONNX, TorchScript or a ``torch.export`` program (``.pt2``).

    ``input_size`` defaults to the model's preprocessing size; the batch axis is dynamic
    in every format.

    Example:
        >>> from manet_zoo import manet
        >>> from manet_zoo.export import export
        >>> export(manet().eval(), "manet.onnx", "onnx")           # doctest: +SKIP
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.incomplete{path.suffix}")  # torch.export wants .pt2
    if format == "onnx":
        tmp.write_bytes(onnx_bytes(model, input_size=input_size, opset=opset))
    elif format == "torchscript":
        wrapper = _prepared(model)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, (_example(model, input_size),))
        traced.save(str(tmp))
    else:
        wrapper = _prepared(model)
        batch = torch.export.Dim("batch", min=1, max=4096)
        with torch.no_grad():
            program = torch.export.export(
                wrapper, (_example(model, input_size),), dynamic_shapes=({0: batch},)
            )
        torch.export.save(program, str(tmp))
    os.replace(tmp, path)
    return path
