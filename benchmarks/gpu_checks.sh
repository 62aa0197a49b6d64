#!/usr/bin/env bash
# The checks that need a GPU, in one pass (a lent GPU machine is short of time, not of cores):
#   1. tests/test_cuda.py (bf16 update, pinned replay copies, GPU = CPU imagination, --device auto)
#   2. benchmarks/dreamer_update.py and benchmarks/imagine.py on CUDA (the GPU is named in the JSON)
#   3. meanwhile, on the machine's spare CPU cores, the data-parallel CartPole learning check
#      (benchmarks/dreamer_ddp.py, gloo on CPUs), waited for until DEADLINE_S after the start.
# Usage: OUT=dir [DDP_STEPS=12000] [DDP_SEEDS="0 1 2 3"] [DEADLINE_S=480] bash benchmarks/gpu_checks.sh
# Everything lands in $OUT/gpu_checks.tgz (a file per check, and the JSON results that
# benchmarks/_results.py writes, under results/); gpu_checks.txt beside it is the short summary.
# Every step runs whatever an earlier one did, so one failure does not hide the others.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
W=$(mktemp -d)
mkdir -p "$OUT" "$W/results"
export AGENTWM_RESULTS_DIR="$W/results" OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
start=$(date +%s)
PY=${PY:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}  # the GPU checks; the learning runs take one thread each
nvidia-smi -L >"$W/gpu.txt" 2>&1
$PY -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" >>"$W/gpu.txt" 2>&1

# 3 (background): 2 ranks vs 1 process per seed, all runs at once on the CPU cores.
seeds=${DDP_SEEDS:-0 1 2 3}
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 $PY benchmarks/dreamer_ddp.py --device cpu --steps "${DDP_STEPS:-12000}" --seeds $seeds \
  --jobs 8 --keep /tmp/ddp-runs >"$W/ddp.json" 2>"$W/ddp.log" &
ddp=$!

# 1 and 2: the GPU.
$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_device.py >"$W/pytest.txt" 2>&1
echo "pytest exit $?" >>"$W/pytest.txt"
$PY benchmarks/dreamer_update.py --device cuda --presets tiny size12m dreamerv3-torch --iters 10 --warmup 3 \
  --threads 2 --roofline >"$W/update.json" 2>"$W/update.log"
$PY benchmarks/dreamer_update.py --device cuda --presets size12m --iters 10 --warmup 3 --threads 2 --compile \
  >"$W/update_compile.json" 2>"$W/update_compile.log"
$PY benchmarks/imagine.py --presets size12m,dreamerv3-torch --repeats 5 >"$W/imagine.json" 2>"$W/imagine.log"

# Wait for the learning check until the deadline, then keep what its runs have logged so far.
while kill -0 "$ddp" 2>/dev/null && [ $(($(date +%s) - start)) -lt "${DEADLINE_S:-480}" ]; do sleep 5; done
if kill -0 "$ddp" 2>/dev/null; then
  echo "dreamer_ddp still running at the deadline; eval curves so far:" >>"$W/ddp.log"
  for m in /tmp/ddp-runs/*/metrics.jsonl; do
    echo "$m $(grep -o '"frames": [0-9]*, "eval/return": [0-9.]*' "$m" | tr '\n' ' ')" >>"$W/ddp.log"
  done
fi
echo "gpu_checks done in $(($(date +%s) - start)) s" >>"$W/gpu.txt"
tail -n 3 "$W/pytest.txt" >>"$W/gpu.txt"
cp "$W/gpu.txt" "$OUT/gpu_checks.txt"
tar czf "$OUT/gpu_checks.tgz" -C "$W" .
cat "$OUT/gpu_checks.txt"
