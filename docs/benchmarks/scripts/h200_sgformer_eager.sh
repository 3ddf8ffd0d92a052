#!/usr/bin/env bash
# SG-Former-S eager speed before/after issue 15's op reduction, on one H200. Run from a checkout of the code to
# measure, once per version, with the same TAG scheme:  bash docs/benchmarks/scripts/h200_sgformer_eager.sh before
# (on main before the merge) and  ... after  (on the merged branch). Results land in $OUT (or /tmp/sgf_eager_TAG).
set -u
TAG=${1:-after}
OUT=${OUT:-/tmp/sgf_eager_$TAG}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark_backbone.py
E="--warmup 5 --iters 10 --repeats 3"
# CUDA tests first (SG-Former's, the fast path against the reference included).
timeout 120 python3 -m pytest tests/test_cuda -q -p no:cacheprovider -k "sgformer or sg_former" > "$OUT/cuda_tests.log" 2>&1
tail -1 "$OUT/cuda_tests.log"
# Eager: dense 2x800x1216 fwd+bwd and classification batch 64, fp32 and bf16 (issue 15's rows), then GPU time alone.
timeout 150 python3 $B SGFormer:s timm:swin_tiny_patch4_window7_224 --geometry dense cls --mode train $E \
    --out "$OUT/eager_train_$TAG.json" > "$OUT/eager_train.log" 2>&1
timeout 100 python3 $B SGFormer:s --geometry dense cls --mode train --precision bf16 --cuda-graph $E \
    --out "$OUT/graph_train_$TAG.json" > "$OUT/graph_train.log" 2>&1
# Kernel counts and host vs device time per module kind (bf16 dense), comparable with profiles/SGFormer-s_*.
timeout 60 python3 docs/benchmarks/scripts/module_breakdown.py SGFormer:s --dtype bf16 \
    --out "$OUT/breakdown_bf16_$TAG.txt" > /dev/null 2>&1
# CPU op counts of the same code (no GPU needed; the table in docs/benchmarks/sgformer_eager_ops.md).
python3 docs/benchmarks/scripts/count_ops.py SGFormer:s --size 120 184 --json "$OUT/cpu_ops_$TAG.json"
grep -h '^|' "$OUT"/*.log | grep -v -- '---'
