#!/usr/bin/env bash
# One prepared script for a session that has a GPU machine (the device tool's `run`):
#   run(command="bash benchmarks/gpu_session.sh", timeout_s=600)
# It needs nothing beyond that machine's PyTorch image, writes everything under $OUT
# (or ./gpu-results), and stops each step at a time limit so the whole fits in 10 minutes.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

echo "== equivalence on the GPU"
timeout 90 python3 benchmarks/gpu_equivalence.py --device cuda | tee "$OUT/equivalence.json"

echo "== inference: batch 1, 64, 512; fp32 and bf16"
timeout 200 python3 benchmarks/bench_inference.py --device cuda --batch-sizes 1 64 512 \
  --no-onnx --skip-load --json "$OUT/inference.json" 2>&1 | tee "$OUT/inference.txt"

echo "== inference with torch.compile, batch 64 and 512"
timeout 150 python3 benchmarks/bench_inference.py --device cuda --batch-sizes 64 512 \
  --no-onnx --skip-load --compile --json "$OUT/inference_compile.json" 2>&1 | tee "$OUT/inference_compile.txt"

echo "== training throughput, batch 128"
timeout 120 python3 benchmarks/train_throughput.py --batch-size 128 --steps 20 \
  --modes fp32 bf16 bf16+cl 2>&1 | tee "$OUT/train.jsonl"

echo "== training on CUDA end to end: fp16 with the gradient scaler, channels_last, deterministic, resume"
WORK=$(mktemp -d)  # images and checkpoints stay on the machine; summaries come back
python3 -c "from pathlib import Path; from tests.train_fakes import two_class_folder; two_class_folder(Path('$WORK/fake'), {'train': 40, 'test': 8}, size=112)"
TRAIN="python3 -m manet_zoo.cli train --recipe finetune --data $WORK/fake --init none --batch-size 16 --input-size 112 --device cuda --amp fp16 --channels-last --deterministic --workers 2 --no-progress --no-export --out $WORK/run"
{ timeout 45 $TRAIN --epochs 1 && timeout 45 $TRAIN --epochs 2 --resume; } 2>&1 | tail -20 | tee "$OUT/train_fp16.txt"
cp "$WORK/run/metrics.jsonl" "$WORK/run/summary.json" "$OUT/" 2>/dev/null
