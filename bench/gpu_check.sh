#!/usr/bin/env bash
# GPU check, ready to run as is on one CUDA GPU (sized for an H100/H200: under 10 minutes).
#
#   bash bench/gpu_check.sh            # results and logs in a temporary folder (printed at the end)
#   GPU_CHECK_OUT=/tmp/gc bash bench/gpu_check.sh
#
# Prints one line per figure:
#   * the CUDA-only tests (torch masks on CUDA == CPU, fp16 training with a GradScaler);
#   * the quick grid (run_benchmark.py --quick: dar + misa, 3 seeds, 10 rates) on cuda at fp32, bf16
#     and fp16 (MMSA's misa trains in fp32 in all three): wall time and DAR's mean MAE at rate 0;
#   * the same fp32 quick grid on the Ray backend, two runs per GPU (--backend ray --gpus-per-run 0.5,
#     a local Ray): wall time, DAR's MAE, and the largest difference from the serial grid's per-rate
#     MAE (skipped with one line when ray is not importable);
#   * peak GPU memory of one training epoch per model (MOSI shapes, 12-layer 768-wide random BERT),
#     fp32 for every model and bf16 for dar_mmsa's;
#   * one timed DAR epoch on full-size synthetic MOSI (1284 training samples) with that BERT, at each
#     precision.
# Every step has its own time limit inside an overall budget (GPU_CHECK_BUDGET_S, default 540 s);
# a step that does not fit says so on its line.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT="${GPU_CHECK_OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
mkdir -p "$OUT"
BUDGET="${GPU_CHECK_BUDGET_S:-540}"
START=$(date +%s)

remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME CAP_S COMMAND...: runs COMMAND with min(CAP_S, remaining budget) seconds, output to $OUT/NAME.log
step() {
  local name=$1 cap=$2; shift 2
  local left; left=$(remaining)
  local limit=$(( cap < left ? cap : left ))
  if (( limit < 10 )); then echo "$name: skipped (time budget of ${BUDGET}s spent)"; return 124; fi
  local t0; t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  STEP_WALL=$(python -c "import time; print(f'{time.time() - $t0:.1f}')")
  if (( rc == 124 )); then echo "$name: timed out after ${limit}s (see $OUT/$name.log)"; fi
  return $rc
}

python - <<'PY' || { echo "gpu check: no CUDA device visible to torch"; exit 1; }
import torch
assert torch.cuda.is_available()
p = torch.cuda.get_device_properties(0)
print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
      f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
PY

if step cuda-tests 90 python -m pytest -q -p no:cacheprovider tests/test_corruption_torch.py tests/test_precision.py -k cuda; then
  echo "cuda tests: $(tail -n 1 "$OUT/cuda-tests.log") (${STEP_WALL}s)"
else
  echo "cuda tests: FAILED: $(tail -n 1 "$OUT/cuda-tests.log") (see $OUT/cuda-tests.log)"
fi

quick() {
  local precision=$1
  if step "quick-$precision" 110 python run_benchmark.py --quick --device cuda --precision "$precision" \
      --out "$OUT/runs" --name "quick-$precision" --no-progress; then
    local mae
    mae=$(python - "$OUT/runs/quick-$precision/per_rate.csv" <<'PY'
import sys, pandas as pd
rows = pd.read_csv(sys.argv[1])
rows = rows[(rows.model == "dar") & (rows.condition == "intra-0.0")]
print(f"{rows.MAE_mean.iloc[0]:.4f} +- {rows.MAE_std.iloc[0]:.4f} over {rows.n_seeds.iloc[0]} seeds" if len(rows) else "n/a")
PY
)
    echo "quick grid cuda $precision: ${STEP_WALL}s wall, DAR MAE at rate 0: $mae"
  else
    echo "quick grid cuda $precision: FAILED (exit $?): $(tail -n 1 "$OUT/quick-$precision.log")"
  fi
}
quick fp32

if ! python -c "import ray" > /dev/null 2>&1; then
  echo "quick grid cuda ray: skipped (ray is not importable: pip install -e '.[ray]')"
elif step quick-ray 150 python run_benchmark.py --quick --device cuda --backend ray --gpus-per-run 0.5 \
    --out "$OUT/runs" --name quick-ray --no-progress; then
  compared=$(python - "$OUT/runs/quick-ray/per_rate.csv" "$OUT/runs/quick-fp32/per_rate.csv" <<'PY'
import os, sys, pandas as pd
ray = pd.read_csv(sys.argv[1])
dar = ray[(ray.model == "dar") & (ray.condition == "intra-0.0")]
text = f"DAR MAE at rate 0: {dar.MAE_mean.iloc[0]:.4f}" if len(dar) else "DAR MAE at rate 0: n/a"
if os.path.exists(sys.argv[2]):
    both = ray.merge(pd.read_csv(sys.argv[2]), on=["model", "condition"], suffixes=("_ray", "_serial"))
    text += f"; largest |MAE ray - serial| over {len(both)} rows: {(both.MAE_mean_ray - both.MAE_mean_serial).abs().max():.2e}"
print(text)
PY
)
  echo "quick grid cuda ray (--gpus-per-run 0.5): ${STEP_WALL}s wall, $compared"
else
  echo "quick grid cuda ray: FAILED (exit $?): $(tail -n 1 "$OUT/quick-ray.log")"
fi

if step memory 150 python bench/gpu_check.py memory --precisions fp32 bf16 --work "$OUT/work"; then :; fi
grep -h "^peak memory" "$OUT/memory.log" 2>/dev/null || echo "peak memory: no figures (see $OUT/memory.log)"

if step epoch 110 python bench/gpu_check.py epoch --precisions fp32 bf16 fp16 --work "$OUT/work"; then :; fi
grep -h "^DAR epoch" "$OUT/epoch.log" 2>/dev/null || echo "DAR epoch: no figures (see $OUT/epoch.log)"

quick bf16
quick fp16

echo "gpu check: $(( $(date +%s) - START ))s in all; logs in $OUT"
