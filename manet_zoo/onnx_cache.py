"""An on-disk cache of the ONNX graphs that ONNX Runtime runs.

Exporting MA-Net to ONNX takes about 1.7 s on a 2-core CPU, more than a batch of 16
images takes to run; building an ONNX Runtime session from a graph file takes about
0.2 s. So the first :class:`~manet_zoo.runtime.OnnxRuntimeRunner` for some weights
exports the graph once into ``<cache>/onnx/<key>.onnx`` and every later one, in any
process, reads it back.

The key is the sha256 of everything the graph is made of: the weights (names, dtypes,
shapes, bytes), the labels, preprocessing and source carried in its metadata, the input
size, the opset, and the manet-zoo, torch and onnx versions. Changed weights or a new
release give a new file; nothing is ever served stale.

``MANET_ZOO_CACHE`` moves the cache (default ``$XDG_CACHE_HOME/manet_zoo`` or
``~/.cache/manet_zoo``); ``MANET_ZOO_ONNX_CACHE=0`` turns it off. A graph holds the
weights, about 200 MB for MA-Net, so the cache keeps the :data:`MAX_GRAPHS` most recently
used graphs and deletes older ones (a loop over many checkpoints cannot fill the disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import warnings
from pathlib import Path

import torch

from manet_zoo import config
from manet_zoo._version import __version__
from manet_zoo.export import DEFAULT_OPSET, onnx_bytes
from manet_zoo.models.manet import MANet

#: Graphs kept in the cache (most recently used first); about 200 MB each.
MAX_GRAPHS = 8


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def graph_key(model: MANet, input_size: tuple[int, int], opset: int = DEFAULT_OPSET) -> str:
    """The sha256 naming the ONNX graph that :func:`onnx_bytes` would make of ``model``."""
    digest = hashlib.sha256()
    header = (
        __version__, torch.__version__, _version("onnx"), opset, tuple(input_size),
        model.num_classes, model.fusion_weight, model.fused, model.labels,
        model.preprocessing.to_json(), model.source,
    )  # fmt: skip
    digest.update(repr(header).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().data)
    return digest.hexdigest()


def graphs_folder() -> Path:
    return config.cache_dir() / "onnx"


def graph_path(key: str) -> Path:
    return graphs_folder() / f"{key[:40]}.onnx"


def cached_graphs(folder: Path | None = None) -> list[Path]:
    """The graphs in the cache (or ``folder``), most recently used first."""
    return sorted((folder or graphs_folder()).glob("*.onnx"), key=_mtime, reverse=True)


def clear() -> tuple[int, int]:
    """Delete every cached graph (and any left half-written); returns (files, bytes)."""
    files = freed = 0
    for path in [*graphs_folder().glob("*.onnx"), *graphs_folder().glob("*.incomplete")]:
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            files, freed = files + 1, freed + size
    return files, freed


def cached_graph(
    model: MANet, input_size: tuple[int, int], opset: int = DEFAULT_OPSET
) -> Path | bytes:
    """The graph's file in the cache, exported first if it is not there; the graph as
    bytes when the cache is off or cannot be written."""
    if not config.onnx_cache_enabled():
        return onnx_bytes(model, input_size=input_size, opset=opset)
    path = graph_path(graph_key(model, input_size, opset))
    if path.is_file():
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be evicted
        return path
    graph = onnx_bytes(model, input_size=input_size, opset=opset)
    # A unique temporary name and an atomic rename: processes exporting the same graph
    # at once each write their own file, and no reader ever sees half a graph.
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.incomplete")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(graph)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        warnings.warn(
            f"cannot write the ONNX graph cache in {path.parent} ({exc}); exporting in memory "
            "each time instead. Set MANET_ZOO_CACHE to a writable folder.",
            stacklevel=3,
        )
        return graph
    evict(path.parent, keep=MAX_GRAPHS)
    return path


def evict(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used graphs in ``folder``."""
    for old in cached_graphs(folder)[keep:]:
        with contextlib.suppress(OSError):  # another process may have removed it already
            old.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def forget(path: Path) -> None:
    """Remove a cached graph that turned out to be unreadable."""
    path.unlink(missing_ok=True)
