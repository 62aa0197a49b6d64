#!/usr/bin/env bash
# The checks that need a GPU, in one pass (a lent GPU machine is short of time, not of cores):
#   1. tests/test_cuda.py (bf16 update, pinned replay copies, GPU = CPU imagination, --device auto,
#      no host sync in the device-guarded update, the CUDA-graph update: replay, learning, NaN skip,
#      a training run with cuda_graph=on and its resume)
#   2. benchmarks/dreamer_update.py on CUDA: eager (with its kernel count), then one replayed CUDA
#      graph per update (--cuda-graph), per preset; the GPU is named in the JSON
#      and with --compile too (within COMPILE_S; kernels per phase; then 8 observe steps per compiled
#      call); benchmarks/cuda_syncs.py lists any host sync
#   3. meanwhile, CartPole with the CLI's defaults on the GPU (cuda_graph=auto, the default), eval curves kept
#      until DEADLINE_S after the start; with DDP=1 also the data-parallel CPU learning check.
# Usage: OUT=dir [DEADLINE_S=280] [CARTPOLE_SEEDS="0 1"] [DDP=0] bash benchmarks/gpu_checks.sh
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
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
nvidia-smi -L >"$W/gpu.txt" 2>&1
$PY -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" >>"$W/gpu.txt" 2>&1

# 3 (background): CartPole on the GPU, the CLI's defaults (30k frames), one run per seed.
pids=""
for seed in ${CARTPOLE_SEEDS:-0 1}; do
  $PY -m agentwm train dreamer --env CartPole-v1 --steps 30000 --seed "$seed" --logdir "$W/cartpole-$seed" --quiet \
    >"$W/cartpole-$seed.json" 2>"$W/cartpole-$seed.log" &
  pids="$pids $!"
done
if [ "${DDP:-0}" = 1 ]; then
  OMP_NUM_THREADS=1 $PY benchmarks/dreamer_ddp.py --device cpu --steps "${DDP_STEPS:-12000}" --seeds ${DDP_SEEDS:-0 1 2 3} \
    --jobs 8 --keep /tmp/ddp-runs >"$W/ddp.json" 2>"$W/ddp.log" &
  pids="$pids $!"
fi

# 1 and 2: the GPU.
$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_device.py tests/test_dreamer_device_guard.py \
  >"$W/pytest.txt" 2>&1
echo "pytest exit $?" >>"$W/pytest.txt"
$PY benchmarks/cuda_syncs.py --preset size12m >"$W/syncs.json" 2>"$W/syncs.log"
$PY benchmarks/dreamer_update.py --device cuda --presets size12m --iters 5 --warmup 2 --threads 2 --kernels \
  >"$W/update_eager.json" 2>"$W/update_eager.log"
$PY benchmarks/dreamer_update.py --device cuda --presets size12m tiny dreamerv3-torch --iters 20 --warmup 2 --threads 2 \
  --cuda-graph >"$W/update_graph.json" 2>"$W/update_graph.log"
timeout "${COMPILE_S:-150}" $PY benchmarks/dreamer_update.py --device cuda --presets size12m --iters 20 --warmup 2 \
  --threads 2 --cuda-graph --compile --phases >"$W/update_graph_compile.json" 2>"$W/update_graph_compile.log"
timeout "${COMPILE_S:-150}" $PY benchmarks/dreamer_update.py --device cuda --presets size12m --iters 20 --warmup 2 \
  --threads 2 --cuda-graph --compile --phases --set compile_observe_chunk=8 >"$W/update_graph_compile_chunk8.json" \
  2>"$W/update_graph_compile_chunk8.log"
echo "gpu benchmarks done at $(($(date +%s) - start)) s" >>"$W/gpu.txt"

# Wait for the learning runs until the deadline, then keep what they have logged so far.
while [ $(($(date +%s) - start)) -lt "${DEADLINE_S:-280}" ]; do
  alive=0
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 5
done
for m in "$W"/cartpole-*/metrics.jsonl /tmp/ddp-runs/*/metrics.jsonl; do
  [ -f "$m" ] && echo "$m $(grep -o '"frames": [0-9]*, "eval/return": [0-9.]*' "$m" | tr '\n' ' ')" >>"$W/curves.txt"
  [ -f "$m" ] && echo "$m ups $(grep -o '"charts/ups": [0-9.]*' "$m" | tail -n 3 | tr '\n' ' ')" >>"$W/curves.txt"
done
echo "gpu_checks done in $(($(date +%s) - start)) s" >>"$W/gpu.txt"
tail -n 3 "$W/pytest.txt" >>"$W/gpu.txt"
cp "$W/gpu.txt" "$OUT/gpu_checks.txt"
tar czf "$OUT/gpu_checks.tgz" -C "$W" --exclude='*.safetensors' --exclude='*.pkl' --exclude=tb .
cat "$OUT/gpu_checks.txt"
