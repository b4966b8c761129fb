#!/usr/bin/env bash
# The two evidence folders at 0.2 scale (a benchmark, not a test), every training as its own driver so that
# JOBS of them run side by side (one torch thread each), then one results store per folder and its reports:
#   dar-evidence-scale0.2   Table 1 (dar misa lnln), Table 2's w/o L_diff, CLUB input raw vs scale-free;
#                           max_epochs 30 (LNLN's 200 fixed epochs become 30)
#   derl-evidence-scale0.2  DERL-style, DAR and MISA under both protocols; max_epochs 20, batch 16, aligned data
# Inputs: synthetic MOSI at 0.2 of the real split sizes (257/46/137, seed 0) and the tiny random 1-layer BERT,
# written once under OUT/evidence-scale0.2-inputs/. Seeds 1111 1112 1113.
# Usage: bash bench/evidence_scale0.2.sh OUT DEVICE JOBS      e.g. bash bench/evidence_scale0.2.sh /work/evidence cpu 2
# Rerunning resumes: each driver's folder keeps what it finished. The stores are combined by copying run
# folders (docs/benchmark.md, "Combining stores"); the report commands at the end train nothing.
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
OUT=${1:-results}; DEVICE=${2:-cpu}; JOBS=${3:-2}
IN=$OUT/evidence-scale0.2-inputs
mkdir -p "$OUT/drivers"
[ -f "$IN/data/MOSI/Processed/aligned_50.pkl" ] || python -m dar_mmsa.data.synthetic --root "$IN/data" --datasets mosi --scale 0.2 --seed 0
[ -d "$IN/tiny-bert" ] || python -c "from dar_mmsa.text_encoder import write_tiny_bert; write_tiny_bert('$IN/tiny-bert', num_layers=1)"
INPUTS="--data-root $IN/data --pretrained $IN/tiny-bert --device $DEVICE --loader-workers 0 --no-progress --out $OUT"
DAR="$INPUTS --set max_epochs=30 --with-reported"
DERL="$INPUTS --set max_epochs=20 batch_size=16 need_data_aligned=True --protocol all"

units() {  # one line per driver: folder name, then its options (longest first: LNLN, then the rest)
  for seed in 1111 1112 1113; do
    echo "dar-lnln-$seed --models lnln --seeds $seed $DAR"
    echo "derl-derl-$seed --models derl --seeds $seed $DERL"
  done
  for seed in 1111 1112 1113; do
    echo "dar-dar-$seed --models dar --seeds $seed $DAR"
    echo "dar-misa-$seed --models misa --seeds $seed $DAR"
    echo "dar-wo-diff-$seed --experiment ablation --variants wo-diff --seeds $seed $DAR"
    echo "dar-club-raw-$seed --experiment club-input --variants raw --seeds $seed $DAR"
    echo "derl-dar-$seed --models dar --seeds $seed $DERL"
    echo "derl-misa-$seed --models misa --seeds $seed $DERL"
  done
}
drive() {  # drive NAME OPTIONS...: one driver in its own folder, log beside it
  local name=$1; shift
  local t0=$SECONDS
  python run_benchmark.py "$@" --name "drivers/$name" > "$OUT/drivers/$name.log" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s"
}
export -f drive; export OUT
units | xargs -P "$JOBS" -L 1 bash -c 'drive "$@"' _

combine() {  # combine FOLDER PREFIX: copy the run folders of every driver named PREFIX* into FOLDER's store
  mkdir -p "$OUT/$1/store/runs"
  for runs in "$OUT"/drivers/"$2"*/store/runs; do cp -rn "$runs"/. "$OUT/$1/store/runs/"; done
}
combine dar-evidence-scale0.2 dar-
combine derl-evidence-scale0.2 derl-
R="--seeds 1111 1112 1113 --eval-only"
python run_benchmark.py --experiment ablation --variants wo-diff full $R $DAR --name dar-evidence-scale0.2
python run_benchmark.py --experiment club-input $R $DAR --name dar-evidence-scale0.2
python run_benchmark.py --models dar misa lnln $R $DAR --name dar-evidence-scale0.2
python run_benchmark.py --models derl dar misa $R $DERL --name derl-evidence-scale0.2
