#!/usr/bin/env bash
# One H100 (session 2): the memory lever. Training at batch 64 x 224 (fp32 and bf16) without and with
# with_cp='selective' (matrix-product / attention / conv outputs kept, the rest recomputed), eager and in CUDA
# graphs; then the graph-mode numbers session 1 did not reach. Writes to $OUT.
set -u
export PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark_backbone.py
REF=docs/benchmarks/authors_figures.json
R=/tmp/mem; mkdir -p $R
trap 'cp $R/*.json $OUT/ 2>/dev/null; tar czf $OUT/mem_logs.tgz -C $R .' EXIT
CFPP="group_size=(4,4,14,7) interval=(4,2,1,1)"
E="--geometry cls --mode train --warmup 5 --iters 10 --repeats 3 --reference $REF"
MODELS="CrossFormer:s SGFormer:s SGFormer:b PaleTransformer:t"
timeout 100 python3 $B $MODELS $E --out $R/h100_train_plain.json > $R/plain.log 2>&1
timeout 100 python3 $B $MODELS $E --options with_cp=\'selective\' --out $R/h100_train_selective.json \
    > $R/selective.log 2>&1
timeout 40 python3 $B CrossFormerPP:s $E --options $CFPP --out $R/h100_train_plain_cfpp.json > $R/plain_cfpp.log 2>&1
timeout 40 python3 $B CrossFormerPP:s $E --options $CFPP with_cp=\'selective\' \
    --out $R/h100_train_selective_cfpp.json > $R/selective_cfpp.log 2>&1
G="--cuda-graph --geometry cls --mode train --warmup 3 --iters 10 --repeats 3 --reference $REF"
timeout 120 python3 $B $MODELS $G --options with_cp=\'selective\' --out $R/h100_graph_selective.json \
    > $R/graph_selective.log 2>&1
timeout 60 python3 $B CrossFormerPP:s $G --options $CFPP --out $R/h100_graph_cfpp.json > $R/graph_cfpp.log 2>&1
timeout 60 python3 $B timm:swin_tiny_patch4_window7_224 PaleTransformer:s --cuda-graph --geometry cls \
    --warmup 3 --iters 10 --repeats 3 --reference $REF --out $R/h100_graph_swin_pale-s.json > $R/graph_swin.log 2>&1
grep -h '^|' $R/*.log | grep -v -- '---' | grep -v '| model |'
