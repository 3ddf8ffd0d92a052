#!/usr/bin/env bash
# One H200, one call (< 8 min), session 3, second call: the Pale CUDA test again (IEEE fp32), block profiles of
# the three backbones after the issue-14/15 changes (profile_blocks.py, bf16, cls and dense) and the eager
# backbone figures the first call's time limit cut off (SG-Former-S dense, timm Swin-T).
#   bash docs/benchmarks/scripts/h200_s3_profile.sh      (wheels in .whl/, carried)
# Writes profiles_s3.json, backbone_eager_rest.json, s3_profile.log and cuda_fast_paths.log to $OUT.
set -u
OUT=${OUT:-/tmp/s3p_out}; R=/tmp/s3p
. docs/benchmarks/scripts/device_setup.sh
finish() {
    cp $R/*.json $R/cuda_fast_paths.log $OUT/ 2>/dev/null
    for f in $R/install.log $R/*.out; do echo "=== $f"; cat $f; done > $OUT/s3_profile.log 2>&1
}
trap finish EXIT
timeout 60 python3 -m pytest tests/test_cuda/test_cuda_fast_paths.py -q -p no:cacheprovider > $R/cuda_fast_paths.log 2>&1
echo "cuda fast paths rc=$?"; tail -2 $R/cuda_fast_paths.log
timeout 260 python3 docs/benchmarks/scripts/profile_blocks.py PaleTransformer:t CrossFormer:s SGFormer:s \
    --geometry cls dense --precision bf16 --out $R/profiles_s3.json > $R/profile.out 2>&1
echo "profile rc=$?"; tail -60 $R/profile.out
B="tools/analysis_tools/benchmark_backbone.py --mode train --warmup 5 --iters 10 --repeats 3"
timeout 120 python3 $B SGFormer:s timm:swin_tiny_patch4_window7_224 --out $R/backbone_eager_rest.json \
    > $R/backbone_rest.out 2>&1
echo "backbone rc=$?"; grep '^{' $R/backbone_rest.out | cut -c1-200
