#!/bin/bash
# The DERL-style evidence of issue 14 (a benchmark, not a test): DERL-style (from the abstract) against
# DAR and MISA on synthetic MOSI at 0.2 of the real split sizes (257/46/137, seed 0) with the tiny random
# 1-layer BERT (the same inputs as bench/evidence_scale0.2.sh), both protocols (Table 1 over 10 rates; the
# 7 inter-modal subsets and drop rates), seeds 1111 1112 1113, two runs at a time on the Ray backend
# with one torch thread each. Resumes from the store under $OUT/derl-evidence-scale0.2/.
# Choices: aligned_50 files for all three models (the unaligned 375/500-frame streams cost DERL about
# 3x more per epoch on this CPU); batch 16 for all three (16 steps per epoch); max_epochs 20 with each
# model's early stop (DERL's validation MSE flattens by epoch 4-10 at this scale).
# Usage: bash bench/derl_evidence.sh [OUT]   (OUT default: results)
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=${1:-results}
IN=$OUT/dar-evidence-scale0.2-inputs
[ -f $IN/data/MOSI/Processed/aligned_50.pkl ] || python -m dar_mmsa.data.synthetic --root $IN/data --datasets mosi --scale 0.2 --seed 0
[ -d $IN/tiny-bert ] || python -c "from dar_mmsa.text_encoder import write_tiny_bert; write_tiny_bert('$IN/tiny-bert', num_layers=1)"
python run_benchmark.py --models derl dar misa --protocol all --seeds 1111 1112 1113 \
  --data-root $IN/data --pretrained $IN/tiny-bert \
  --set max_epochs=20 batch_size=16 need_data_aligned=True --device cpu \
  --name derl-evidence-scale0.2 --out $OUT --no-progress --backend ray --jobs 2 --cpus-per-run 1
