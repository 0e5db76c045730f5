"""Do the fast paths on a GPU give the CPU reference module's outputs?

    PYTHONPATH=. python3 benchmarks/gpu_equivalence.py --device cuda

Uses the parity reference weights (tests/reference) on 128 crops of scikit-image's
photographs at 112 px (the set of tests/test_fast.py) and prints one JSON line: max
relative logit error and top-1 agreement of fused fp32, bf16 and fp16 on the device
against eager fp32 on the CPU.
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
from tests.helpers import photo_crops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    model = model_from_state_dict(official_to_native(reference_state_dict(0)))
    x = photo_crops(112, 128)
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
