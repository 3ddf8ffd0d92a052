#!/usr/bin/env bash
# One H100, after the levers: CUDA tests; eager benchmarks of the changed and missing models; CUDA-graph
# benchmarks of every backbone and Swin-T; one torch.compile measurement. Writes to $OUT (tarball at exit).
set -u
B=tools/analysis_tools/benchmark_backbone.py
REF=docs/benchmarks/authors_figures.json
CFPP="--options group_size=(4,4,14,7) interval=(4,2,1,1)"
R=/tmp/final; mkdir -p $R
trap 'tar czf $OUT/final.tgz -C /tmp final' EXIT
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $R/env.txt
timeout 100 python3 -m pytest tests/test_cuda -q -p no:cacheprovider -rs > $R/cuda_tests.log 2>&1
tail -3 $R/cuda_tests.log
E="--warmup 5 --iters 10 --repeats 3 --reference $REF"
timeout 70 python3 $B CrossFormer:s $E --out $R/eager_crossformer.json > $R/eager_cf.log 2>&1
timeout 40 python3 $B CrossFormerPP:s --geometry cls $CFPP $E --out $R/eager_crossformerpp.json > $R/eager_cfpp.log 2>&1
timeout 60 python3 $B SGFormer:b PaleTransformer:s --geometry cls $E --out $R/eager_b.json > $R/eager_b.log 2>&1
G="--cuda-graph --geometry cls --warmup 3 --iters 10 --repeats 3 --reference $REF"
timeout 140 python3 $B CrossFormer:s PaleTransformer:t SGFormer:s SGFormer:b timm:swin_tiny_patch4_window7_224 $G \
    --out $R/graph.json > $R/graph.log 2>&1
timeout 25 python3 $B CrossFormerPP:s $CFPP $G --out $R/graph_cfpp.json > $R/graph_cfpp.log 2>&1
timeout 40 python3 $B CrossFormer:s timm:swin_tiny_patch4_window7_224 --cuda-graph --geometry dense --mode train \
    --warmup 3 --iters 10 --repeats 3 --reference $REF --out $R/graph_dense.json > $R/graph_dense.log 2>&1
timeout 70 python3 $B CrossFormer:s --compile --geometry cls --precision bf16 --mode train --warmup 3 --iters 10 \
    --repeats 3 --reference $REF --out $R/compile.json > $R/compile.log 2>&1
grep -h '^|' $R/*.log | grep -v -- '---' | grep -v '| model |'
