#!/usr/bin/env bash
# One H100 (session 2), after h100_memory.sh: fp32 training memory with with_cp='selective' for SG-Former-B and
# Pale-T (cut off there), torch.compile training of CrossFormer-S (fp32, bf16) and SG-Former-S (bf16), and a
# profile of SG-Former-S at the dense geometry. Writes to $OUT.
set -u
export PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark_backbone.py
REF=docs/benchmarks/authors_figures.json
R=/tmp/comp; mkdir -p $R/profiles
trap 'cp $R/*.json $OUT/ 2>/dev/null; tar czf $OUT/compile_logs.tgz -C $R .' EXIT
E="--geometry cls --mode train --warmup 5 --iters 10 --repeats 3 --reference $REF"
timeout 120 python3 $B SGFormer:b PaleTransformer:t $E --precision fp32 --options with_cp=\'selective\' \
    --out $R/h100_train_selective_b.json > $R/selective_b.log 2>&1
timeout 230 python3 $B CrossFormer:s --compile $E --out $R/h100_compile_crossformer.json > $R/compile_cf.log 2>&1
timeout 150 python3 $B SGFormer:s --compile $E --precision bf16 --out $R/h100_compile_sgformer.json \
    > $R/compile_sg.log 2>&1
timeout 45 python3 $B SGFormer:s --geometry dense --mode train --precision bf16 --warmup 3 --iters 3 --repeats 1 \
    --profile $R/profiles > $R/profile_sg.log 2>&1
grep -h '^|' $R/*.log | grep -v -- '---' | grep -v '| model |'
