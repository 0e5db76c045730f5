"""Do the fast paths on a GPU give the CPU reference module's outputs?

    PYTHONPATH=. python3 benchmarks/gpu_equivalence.py --device cuda

Uses the parity reference weights (tests/reference) on 128 crops of scikit-image's
photographs at 112 px (the same set as tests/test_fast.py when scikit-image is there,
else random images) and prints one JSON line: max relative logit error and top-1
agreement of fused fp32, bf16 and fp16 on the device against eager fp32 on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reference"))

from reference_weights import reference_state_dict  # noqa: E402

from manet_zoo.checkpoint import official_to_native  # noqa: E402
from manet_zoo.factories import model_from_state_dict  # noqa: E402
from manet_zoo.runtime import TorchRunner  # noqa: E402


def image_set(size: int = 112, count: int = 128) -> torch.Tensor:
    try:
        import numpy as np
        from skimage import data
    except ImportError:
        return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(0))
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(64, min(photo.shape[:2])))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = torch.from_numpy(photo[top : top + side, left : left + side].copy())
        crop = crop.permute(2, 0, 1).float().div(255)[None]
        crops.append(torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear"))
    return torch.cat(crops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    model = model_from_state_dict(official_to_native(reference_state_dict(0)))
    x = image_set()
    with torch.no_grad():
        want = model.forward_branches(x)
    report: dict[str, object] = {"device": args.device, "torch": torch.__version__}
    precisions = ["fp32", "bf16"] + (["fp16"] if args.device.startswith("cuda") else [])
    for precision in precisions:
        got = TorchRunner(model, device=args.device, precision=precision)(x)
        errors = [
            float((g - w).abs().max() / w.abs().max()) for g, w in zip(got, want, strict=True)
        ]
        agree = [
            float((g.argmax(1) == w.argmax(1)).float().mean())
            for g, w in zip(got, want, strict=True)
        ]
        report[precision] = {
            "max_rel_error_local_global": errors,
            "top1_agreement_local_global": agree,
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
