#!/bin/bash
# The DAR evidence of issue 12 (a benchmark, not a test): synthetic MOSI at 0.2 of the real split
# sizes (257/46/137), the tiny random BERT, seeds 1111 1112 1113, max_epochs 30 (DAR: early stop 10;
# its schedule is shaped by max_epochs), test rates 0.0 ... 0.9, two runs at a time on the Ray backend
# with one torch thread each. Every step resumes from the store under $OUT/dar-evidence-scale0.2/,
# so rerunning this script continues where it stopped.
#   (a) DAR old recipe vs new, then MISA beside DAR  (b) Table 2 ablations  (c) Table 3 training rates
#   (d) LNLN beside DAR and MISA. --set max_epochs=30 caps every model, LNLN included: its 200 fixed
#       epochs become 30 (its warm-up + cosine shaped by them). Still the costliest (MOSI's 375/500-frame
#       audio/vision): 118 s an epoch measured with three processes on the two cores, so 40-60 min a seed.
# Usage: bash bench/dar_evidence.sh [OUT] [STEP...]   (OUT default: results; steps default: a b c d)
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=${1:-results}; shift || true
STEPS=${*:-a b c d}
IN=$OUT/dar-evidence-scale0.2-inputs
[ -f $IN/data/MOSI/Processed/unaligned_50.pkl ] || python -m dar_mmsa.data.synthetic --root $IN/data --datasets mosi --scale 0.2 --seed 0
[ -d $IN/tiny-bert ] || python -c "from dar_mmsa.text_encoder import write_tiny_bert; write_tiny_bert('$IN/tiny-bert', num_layers=1)"
COMMON="--data-root $IN/data --pretrained $IN/tiny-bert --seeds 1111 1112 1113 --set max_epochs=30 --out $OUT
        --name dar-evidence-scale0.2 --no-progress --device cpu --with-reported --backend ray --jobs 2 --cpus-per-run 1"
for step in $STEPS; do
  case $step in
    a) python run_benchmark.py --experiment recipe $COMMON
       python run_benchmark.py --models dar misa $COMMON ;;
    b) python run_benchmark.py --experiment ablation $COMMON ;;
    c) python run_benchmark.py --experiment train-rate $COMMON ;;
    d) python run_benchmark.py --models dar misa lnln $COMMON ;;
  esac
done
