#!/bin/bash
# The DAR evidence of issue 12 (a benchmark, not a test): synthetic MOSI at 0.2 of the real split
# sizes, the tiny random BERT, seeds 1111 1112 1113, max_epochs 40 (DAR: early stop 10; the
# schedule is shaped by max_epochs), test rates 0.0 ... 0.9. Every step resumes from the store
# under results/dar-evidence-scale0.2/, so rerunning this script continues where it stopped.
#   (a) MISA, LNLN, DAR old recipe vs new  (b) Table 2 ablations  (c) Table 3 training rates
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
IN=results/dar-evidence-scale0.2-inputs
[ -f $IN/data/MOSI/Processed/unaligned_50.pkl ] || python -m dar_mmsa.data.synthetic --root $IN/data --datasets mosi --scale 0.2 --seed 0
[ -d $IN/tiny-bert ] || python -c "from dar_mmsa.text_encoder import write_tiny_bert; write_tiny_bert('$IN/tiny-bert', num_layers=1)"
COMMON="--data-root $IN/data --pretrained $IN/tiny-bert --seeds 1111 1112 1113 --set max_epochs=40 --out results --name dar-evidence-scale0.2 --no-progress --device cpu --with-reported"
python run_benchmark.py --models misa lnln $COMMON
python run_benchmark.py --experiment recipe $COMMON
python run_benchmark.py --models dar misa lnln $COMMON
python run_benchmark.py --experiment ablation $COMMON
python run_benchmark.py --experiment train-rate $COMMON
