#!/usr/bin/env bash
# One H100 (session 2), after SG-Former's hybrid-scale attention moved to SDPA (probabilities for the significance
# from a gradient-free softmax): CUDA tests of SG-Former, eager and graph-mode benchmarks (classification and
# dense), memory with with_cp='selective', Mask R-CNN SG-Former-S against ResNet-50 in bf16, side by side, and
# where the dense step's GPU time goes. Run twice: `... fused` after the SDPA change, `... groupnorm` after
# SingleGroupNorm replaced nn.GroupNorm(1, C) in the convolutional stem and downsamplers.
set -u
TAG=${1:-fused}
export PYTHONUNBUFFERED=1
B=tools/analysis_tools/benchmark_backbone.py
REF=docs/benchmarks/authors_figures.json
R=/tmp/sgf_$TAG; mkdir -p $R
trap 'python3 docs/benchmarks/scripts/summarize_runs.py $R/e2e/* --skip 30 --out $R/h100_sgformer_${TAG}_e2e.json \
      > /dev/null 2>&1; cp $R/*.json $OUT/ 2>/dev/null; tar czf $OUT/sgf_${TAG}_logs.tgz -C $R --exclude="*.pth" .' EXIT
timeout 60 python3 -m pytest tests/test_cuda -q -p no:cacheprovider -k sgformer > $R/cuda_tests.log 2>&1
tail -1 $R/cuda_tests.log
E="--warmup 5 --iters 10 --repeats 3 --reference $REF"
timeout 110 python3 $B SGFormer:s SGFormer:b --geometry cls --mode train $E > $R/eager_cls.log 2>&1
timeout 50 python3 $B SGFormer:s --geometry cls --mode train --precision fp32 --options with_cp=\'selective\' $E \
    > $R/selective.log 2>&1
timeout 60 python3 $B SGFormer:s --geometry dense $E > $R/eager_dense.log 2>&1
timeout 80 python3 $B SGFormer:s --cuda-graph --geometry cls dense --precision bf16 --warmup 3 --iters 10 \
    --repeats 3 --reference $REF > $R/graph.log 2>&1
python3 tools/misc/generate_demo_data.py data/demo --size 512 --num-train 96 --num-val 8 > /dev/null
det() {  # det NAME ITERS
    cfg=$(ls configs/demo/gpu/${1}_shapes-*.py); W=$R/e2e/$1
    timeout 100 python3 tools/train.py $cfg --amp --work-dir $W --cfg-options train_cfg.max_iters=$2 \
        default_hooks.checkpoint.interval=$2 val_cfg=None val_dataloader=None val_evaluator=None \
        > $R/$1.train.log 2>&1; echo "$1 train rc=$?"
}
det mask-rcnn_sgformer-s 100
det mask-rcnn_r50 100
timeout 60 python3 docs/benchmarks/scripts/module_breakdown.py SGFormer:s --dtype bf16 --out $R/breakdown_bf16.txt \
    > /dev/null 2>&1; head -8 $R/breakdown_bf16.txt
grep -h '^|' $R/*.log | grep -v -- '---' | grep -v '| model |'
