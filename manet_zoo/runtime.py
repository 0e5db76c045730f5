"""Fast inference backends that keep MA-Net's outputs.

A runner maps a float batch (N x 3 x H x W, RGB in [0, 1]) to ``(local_logits,
global_logits)`` as float32 CPU tensors, whatever runs underneath:

``TorchRunner``
    The model with BatchNorm folded (:meth:`MANet.fuse`), channels_last memory format
    where it wins, and ``precision="bf16"`` (autocast; CPUs with AVX512-BF16/AMX and
    GPUs) or ``"fp16"`` (GPUs).
``OnnxRuntimeRunner``
    The fused graph exported to ONNX (in memory) and run by ONNX Runtime's CPU
    provider; needs the ``onnx`` extra. fp32 only.

:func:`make_runner` with ``backend="auto"`` picks what measured fastest here
(``docs/benchmarks.md``): ONNX Runtime for fp32 on a CPU when it is installed (half the
latency of PyTorch at batch 1, 5-10% more throughput at batch 16 and 32; its graph is
exported once per weights and cached, :mod:`manet_zoo.onnx_cache`), PyTorch otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal, Protocol

import torch
from torch import Tensor

from manet_zoo.errors import MissingDependencyError
from manet_zoo.models.manet import MANet

Backend = Literal["auto", "torch", "onnxruntime"]
Precision = Literal["fp32", "bf16", "fp16"]
BACKENDS = ("auto", "torch", "onnxruntime")
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Runner(Protocol):
    backend: str
    precision: str
    device: torch.device

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]: ...


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchRunner:
    """MA-Net in PyTorch with BatchNorm folded, channels_last, and fp32, bf16 or fp16.

    In bf16/fp16 the weights are cast once and the whole forward runs in that dtype, as
    autocast would run it (convolutions and linear layers in half precision, and every
    activation between them), without casting each weight again on every call (measured
    7% faster at batch 16 on a CPU). The logits come back as float32.
    """

    backend = "torch"

    def __init__(
        self,
        model: MANet,
        *,
        device: str | torch.device | None = None,
        precision: Precision = "fp32",
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError("fp16 runs on GPUs only; use precision='bf16' on a CPU")
        self.precision = precision
        self.dtype = _DTYPES.get(precision, torch.float32)
        self.channels_last = channels_last
        fused = model if model.fused else model.eval().fuse()
        fused = fused.to(self.device, self.dtype)
        if channels_last:
            fused = fused.to(memory_format=torch.channels_last)
        self.model = fused
        # torch.compile wraps forward(); the method that returns both branches is compiled
        # on its own (compiling takes minutes on a small CPU; see docs/benchmarks.md).
        self._forward = torch.compile(fused.forward_branches) if compile else fused.forward_branches

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = images.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        local, glob = self._forward(x)
        return local.float().cpu(), glob.float().cpu()


class OnnxRuntimeRunner:
    """The fused MA-Net graph run by ONNX Runtime's CPU provider (fp32)."""

    backend = "onnxruntime"
    precision = "fp32"
    device = torch.device("cpu")

    def __init__(self, model: MANet, *, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError(
                "backend='onnxruntime' needs ONNX Runtime: pip install 'manet-zoo[onnx]'"
            ) from exc
        from manet_zoo.onnx_cache import cached_graph, forget

        self.input_size = model.preprocessing.input_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads would otherwise spin and slow down whatever runs next
        # (face detection, PyTorch) on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = model.cpu()
        graph = cached_graph(model, self.input_size)
        try:
            self.session = _session(ort, graph, options)
        except Exception:  # ONNX Runtime raises its own types; only a cached file is retried
            if not isinstance(graph, Path):
                raise
            forget(graph)  # unreadable (a disk error, an edit): export it again
            self.session = _session(ort, cached_graph(model, self.input_size), options)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if tuple(images.shape[-2:]) != tuple(self.input_size):
            raise ValueError(
                f"the ONNX Runtime graph was built for {self.input_size[0]}x"
                f"{self.input_size[1]} inputs, got {tuple(images.shape[-2:])}"
            )
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        local, glob, _ = self.session.run(None, {"image": array})
        return torch.from_numpy(local), torch.from_numpy(glob)


def _session(ort, graph: Path | bytes, options):  # -> ort.InferenceSession
    source = str(graph) if isinstance(graph, Path) else graph
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def choose_backend(device: torch.device, precision: str) -> str:
    """The backend that measured fastest (``docs/benchmarks.md``) for this device and
    precision: ONNX Runtime for fp32 on a CPU when it is installed, PyTorch otherwise."""
    if device.type == "cpu" and precision == "fp32" and onnxruntime_available():
        return "onnxruntime"
    return "torch"


def make_runner(
    model: MANet,
    *,
    backend: Backend = "auto",
    precision: Precision = "fp32",
    device: str | torch.device | None = None,
    compile: bool = False,
) -> Runner:
    """The fastest runner for ``model`` on ``device`` at ``precision`` (or the backend
    named).

    Example:
        >>> import torch
        >>> from manet_zoo import manet
        >>> from manet_zoo.runtime import make_runner
        >>> run = make_runner(manet().eval(), backend="torch", device="cpu")
        >>> local, glob = run(torch.rand(2, 3, 112, 112))
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    resolved = resolve_device(device)
    if backend == "auto":
        backend = "torch" if compile else choose_backend(resolved, precision)
    if backend == "onnxruntime":
        if resolved.type != "cpu" or precision != "fp32" or compile:
            raise ValueError("backend='onnxruntime' runs fp32 on the CPU only, uncompiled")
        return OnnxRuntimeRunner(model)
    return TorchRunner(model, device=resolved, precision=precision, compile=compile)
