#!/usr/bin/env bash
# Diagnosis on one H100: conv and SDPA variants, profiler tables of the slow cases, channels-last A/B.
set -u
B=tools/analysis_tools/benchmark_backbone.py
R=/tmp/res; mkdir -p $R/prof
trap 'tar czf $OUT/profile.tgz -C /tmp res' EXIT
export PYTHONUNBUFFERED=1
timeout 90 python3 docs/benchmarks/scripts/conv_variants.py --out $R/conv.json > $R/conv.log 2>&1
timeout 90 python3 docs/benchmarks/scripts/sdpa_backends.py --out $R/sdpa.json > $R/sdpa.log 2>&1
Q="--warmup 3 --iters 5 --repeats 2 --profile $R/prof --precision bf16"
timeout 60 python3 $B CrossFormer:s --geometry cls dense --mode train $Q > $R/p1.log 2>&1
timeout 60 python3 $B PaleTransformer:t --geometry cls $Q > $R/p2.log 2>&1
timeout 60 python3 $B SGFormer:s --geometry cls --mode train $Q > $R/p3.log 2>&1
timeout 60 python3 $B CrossFormerPP:s --geometry cls --mode infer $Q > $R/p4.log 2>&1
timeout 120 python3 $B CrossFormer:s PaleTransformer:t SGFormer:s --geometry cls --precision bf16 --channels-last \
    --warmup 5 --iters 10 --repeats 3 --out $R/channels_last.json > $R/cl.log 2>&1
tail -5 $R/*.log
