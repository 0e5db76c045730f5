"""Training throughput of MA-Net on synthetic data: images per second for one
optimizer step (forward both branches, two-branch loss, backward, SGD) in several modes.

    python benchmarks/train_throughput.py --batch-size 128 --steps 30
    python benchmarks/train_throughput.py --modes fp32 bf16 bf16+cl bf16+cl+compile

Modes: ``fp32``; ``bf16`` (autocast); ``+cl`` channels_last; ``+compile`` torch.compile.
Prints one JSON line per mode (device, torch version, batch, img/s, peak memory).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from manet_zoo.models.manet import MANet
from manet_zoo.train.engine import Branches, two_branch_loss


def measure(
    mode: str, batch: int, size: int, steps: int, warmup: int, device: torch.device
) -> dict:
    torch.manual_seed(0)
    model = MANet(7).to(device)
    channels_last = "+cl" in mode
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: torch.nn.Module = Branches(model)
    if "+compile" in mode:
        net = torch.compile(net)
    dtype = torch.bfloat16 if mode.startswith("bf16") else None
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.rand(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            local, glob = net(x)
        two_branch_loss(local, glob, y, 0.6).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "batch": batch,
        "input": size,
        "steps": steps,
        "img_per_s": round(batch * steps / seconds, 1),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if device.type == "cuda"
        else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--modes", nargs="+", default=["fp32", "bf16", "bf16+cl", "bf16+cl+compile"])
    args = p.parse_args()
    torch.backends.cudnn.benchmark = True
    for mode in args.modes:
        print(json.dumps(measure(mode, args.batch_size, args.input_size, args.steps, args.warmup,
                                 torch.device(args.device))), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
