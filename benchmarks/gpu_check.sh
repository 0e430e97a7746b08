#!/usr/bin/env bash
# One command for the first session lent a GPU (under 8 minutes on one GPU, nothing downloaded):
#   pytest -m gpu, then benchmarks/gpu_check.py (backbone / detector / end-to-end throughput, fp16 + bf16,
#   with and without torch.compile), with GPU utilisation sampled by nvidia-smi every 0.5 s beside it.
# Without CUDA it runs the same steps on the CPU with small sizes and says so.
# Usage: benchmarks/gpu_check.sh [OUT_DIR]   (default benchmarks/results; $OUT is used when set, as on the device)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT_DIR=${1:-${OUT:-benchmarks/results}}
mkdir -p "$OUT_DIR"
export PYTHONPATH=$PWD
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
    > "$OUT_DIR/nvidia-smi.csv" 2>&1 &
  SMI=$!
else
  echo "gpu_check.sh: CPU mode (no nvidia-smi / no GPU); GPU tests will be skipped"
  SMI=
fi
echo "== pytest -m gpu"
timeout 180 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -15
echo "== benchmarks/gpu_check.py"
timeout 420 "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" ${GPU_CHECK_ARGS:-}
rc=$?
if [ -n "$SMI" ]; then
  kill "$SMI" 2>/dev/null
  "$PY" - "$OUT_DIR/nvidia-smi.csv" <<'PYEOF'
import sys
util, mem = [], []
for line in open(sys.argv[1]):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) == 3 and parts[1].isdigit():
        util.append(int(parts[1])); mem.append(int(parts[2]))
if util:
    busy = [u for u in util if u > 0]
    print(f"nvidia-smi: {len(util)} samples, GPU utilisation mean {sum(util)/len(util):.0f} % "
          f"(mean {sum(busy)/max(len(busy),1):.0f} % while busy), peak memory used {max(mem)} MiB")
PYEOF
fi
exit $rc
