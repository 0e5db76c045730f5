"""Inference speed of MA-Net: the straightforward eager module against the fast paths.

    python benchmarks/bench_inference.py                      # CPU, batch 1 and 16
    python benchmarks/bench_inference.py --device cuda --batch-sizes 1 64 512 --compile

All variants run interleaved (one call of each per round, rounds repeated), so a load
change on the machine hits every variant alike; medians are reported with the ratio to
the eager fp32 module, which is structured like the official code (four quadrant chains
one after another, BatchNorm as separate layers, NCHW). The practical limit is measured
in the same run: the FLOP rate of one large convolution, divided by MA-Net's 7.28 GFLOP per
224 px image. Also measured: ``import manet_zoo`` time, the time to load a cached
checkpoint (safetensors, sha256 check included), and the time to build each runner
(ONNX Runtime: exporting its graph the first time, reading it from the graph cache after).
Exported graphs go to a temporary ``MANET_ZOO_CACHE``, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from manet_zoo import manet, save_weights  # noqa: E402
from manet_zoo.checkpoint import sha256_file  # noqa: E402
from manet_zoo.runtime import OnnxRuntimeRunner, TorchRunner, onnxruntime_available  # noqa: E402
from manet_zoo.summary import count_macs  # noqa: E402

Variant = Callable[[torch.Tensor], object]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of one large 3x3 convolution (512 -> 512 channels on 28 x 28, batch 16,
    channels_last, weights already in ``dtype``): what this machine's convolution
    kernels reach at best, the practical limit for MA-Net's convolution-bound forward."""
    conv = torch.nn.Conv2d(512, 512, 3, padding=1, bias=False).to(device, dtype).eval()
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.rand(16, 512, 28, 28, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    flops = 2 * 16 * 512 * 512 * 9 * 28 * 28
    with torch.inference_mode():
        conv(x)
        sync(device)
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conv(x)
            runs += 1
        sync(device)
    return flops * runs / (time.perf_counter() - start)


def build_variants(
    model: torch.nn.Module, device: torch.device, args: argparse.Namespace
) -> dict[str, tuple[Variant, str]]:
    """name -> (callable on a batch, precision)."""
    eager = model.to(device).eval()

    def eager_fp32(x: torch.Tensor) -> object:
        with torch.inference_mode():
            return eager.forward_branches(x.to(device))

    variants: dict[str, tuple[Variant, str]] = {
        "eager fp32 (official structure)": (eager_fp32, "fp32")
    }
    bf16 = "bf16" in args.precisions
    variants["fused fp32 NCHW"] = (TorchRunner(model, device=device, channels_last=False), "fp32")
    variants["fused fp32 channels_last"] = (TorchRunner(model, device=device), "fp32")
    if bf16:
        variants["fused bf16 channels_last"] = (
            TorchRunner(model, device=device, precision="bf16"),
            "bf16",
        )
        variants["fused bf16 NCHW"] = (
            TorchRunner(model, device=device, precision="bf16", channels_last=False),
            "bf16",
        )
    if device.type == "cpu" and onnxruntime_available() and not args.no_onnx:
        variants["onnxruntime fp32"] = (OnnxRuntimeRunner(model), "fp32")
    if args.compile:
        for precision in ("fp32", "bf16") if bf16 else ("fp32",):
            runner = TorchRunner(model, device=device, precision=precision, compile=True)
            variants[f"fused {precision} channels_last + compile"] = (runner, precision)
    return variants


def time_variants(
    variants: dict[str, tuple[Variant, str]], x: torch.Tensor, rounds: int, device: torch.device
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn, _ in variants.values():  # warm-up (and compilation)
        fn(x)
        fn(x)
    for _ in range(rounds):
        for name, (fn, _) in variants.items():
            sync(device)
            # Let the previous variant's worker threads stop spinning (OpenMP, ONNX Runtime)
            # so that no variant pays for another's idle threads.
            time.sleep(0.05)
            start = time.perf_counter()
            fn(x)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def import_time(repeats: int = 5) -> float:
    code = "import time; t = time.perf_counter(); import manet_zoo; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
            ).stdout
        )
        for _ in range(repeats)
    ]
    return statistics.median(runs)


def cached_load_time(repeats: int = 5) -> tuple[float, float]:
    """(seconds to load a 7-class safetensors checkpoint, seconds for its sha256)."""
    with tempfile.TemporaryDirectory() as folder:
        path = save_weights(manet(num_classes=7).state_dict(), Path(folder) / "w.safetensors")
        loads, hashes = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            manet(weights=path)
            loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            sha256_file(path)
            hashes.append(time.perf_counter() - start)
    return statistics.median(loads), statistics.median(hashes)


def startup_times(model: torch.nn.Module, repeats: int = 3) -> dict[str, float]:
    """Seconds to build each CPU fp32 runner: PyTorch (fold BatchNorm, channels_last),
    ONNX Runtime with an empty graph cache (export), then with the graph cached."""
    torch_runs, cached_runs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        TorchRunner(model, device="cpu")
        torch_runs.append(time.perf_counter() - start)
    times = {"torch": statistics.median(torch_runs)}
    if onnxruntime_available():
        previous = os.environ.get("MANET_ZOO_CACHE")
        with tempfile.TemporaryDirectory() as cache:
            os.environ["MANET_ZOO_CACHE"] = cache  # empty: the first runner exports
            start = time.perf_counter()
            OnnxRuntimeRunner(model)
            times["onnxruntime_first"] = time.perf_counter() - start
            for _ in range(repeats):
                start = time.perf_counter()
                OnnxRuntimeRunner(model)
                cached_runs.append(time.perf_counter() - start)
        if previous is not None:
            os.environ["MANET_ZOO_CACHE"] = previous
        times["onnxruntime_cached"] = statistics.median(cached_runs)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=0, help="default: 20 at batch 1, else 5")
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--skip-load", action="store_true", help="skip import/load timings")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    device = torch.device(args.device)
    graph_cache = tempfile.TemporaryDirectory()  # exported ONNX graphs, not the user's cache
    os.environ["MANET_ZOO_CACHE"] = graph_cache.name
    torch.manual_seed(0)
    model = manet(num_classes=7).eval()
    model.preprocessing = type(model.preprocessing)(input_size=(args.input_size,) * 2)
    gflop = 2 * count_macs(model, args.input_size) / 1e9
    results: dict[str, object] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gflop_per_image": gflop,
        "batches": {},
    }
    peaks = {"fp32": peak_flops(device, torch.float32)}
    if "bf16" in args.precisions:
        peaks["bf16"] = peak_flops(device, torch.bfloat16)
    results["peak_gflops"] = {k: v / 1e9 for k, v in peaks.items()}
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{gflop:.2f} GFLOP per {args.input_size}px image"
    )
    for precision, flops in peaks.items():
        print(
            f"practical limit {precision}: one large conv at {flops / 1e9:.0f} GFLOP/s "
            f"-> {flops / 1e9 / gflop:.1f} img/s"
        )

    variants = build_variants(model, device, args)
    for batch in args.batch_sizes:
        x = torch.rand(batch, 3, args.input_size, args.input_size)
        rounds = args.rounds or (20 if batch == 1 else 5)
        medians = time_variants(variants, x, rounds, device)
        base = medians["eager fp32 (official structure)"]
        print(f"\nbatch {batch} ({rounds} interleaved rounds, median)")
        print(f"  {'variant':40s} {'ms':>9s} {'img/s':>8s} {'vs eager':>9s} {'of limit':>9s}")
        rows = {}
        for name, seconds in medians.items():
            precision = variants[name][1]
            throughput = batch / seconds
            limit = peaks.get(precision, peaks["fp32"]) / 1e9 / gflop
            rows[name] = {
                "ms": seconds * 1e3,
                "img_per_s": throughput,
                "speedup": base / seconds,
                "fraction_of_limit": throughput / limit,
            }
            print(
                f"  {name:40s} {seconds * 1e3:9.1f} {throughput:8.1f} {base / seconds:8.2f}x "
                f"{throughput / limit:8.0%}"
            )
        results["batches"][str(batch)] = rows

    if not args.skip_load:
        imp = import_time()
        load, digest = cached_load_time()
        results.update(import_s=imp, load_s=load, sha256_s=digest)
        print(f"\nimport manet_zoo: {imp * 1e3:.0f} ms (median of 5 fresh interpreters)")
        print(
            f"load a cached 7-class checkpoint: {load * 1e3:.0f} ms, of which sha256 "
            f"{digest * 1e3:.0f} ms when loaded through the zoo (median of 5)"
        )
        if device.type == "cpu":
            startup = startup_times(model)
            results["startup_s"] = startup
            print("build a runner (median of 3): " + ", ".join(
                f"{name} {seconds * 1e3:.0f} ms" for name, seconds in startup.items()
            ))  # fmt: skip
    graph_cache.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
