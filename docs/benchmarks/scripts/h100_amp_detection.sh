#!/usr/bin/env bash
# One H100 (session 2): CUDA-only tests, then the mmdet pipelines under `tools/train.py --amp` in bf16 now that
# the detection configs use torchvision's RoIAlign (Mask R-CNN) and FP32FocalLoss (RetinaNet): Mask R-CNN
# SG-Former-S and ResNet-50 (bf16, one after the other for the time ratio), RetinaNet CrossFormer-S in bf16 and in
# fp16 (the NaN of session 1), 100 iterations each, then tools/test.py. Writes to $OUT.
set -u
export PYTHONUNBUFFERED=1
R=/tmp/amp; mkdir -p $R
trap 'python3 docs/benchmarks/scripts/summarize_runs.py $R/e2e/* --skip 30 --out $R/h100_amp_detection.json \
      > /dev/null 2>&1; cp $R/*.json $R/cuda_tests.log $OUT/ 2>/dev/null; tar czf $OUT/amp_logs.tgz -C $R \
      --exclude="*.pth" .' EXIT
nvidia-smi --query-gpu=name,driver_version --format=csv > $R/env.txt
timeout 150 python3 -m pytest tests/test_cuda tests/test_models -q -p no:cacheprovider -rs > $R/cuda_tests.log 2>&1
tail -3 $R/cuda_tests.log
python3 tools/misc/generate_demo_data.py data/demo --size 512 --num-train 96 --num-val 8 > /dev/null
det() {  # det NAME DTYPE ITERS
    cfg=$(ls configs/demo/gpu/${1}_shapes-*.py); W=$R/e2e/$1.$2
    timeout 150 python3 tools/train.py $cfg --amp --amp-dtype $2 --work-dir $W --cfg-options \
        train_cfg.max_iters=$3 default_hooks.checkpoint.interval=$3 val_cfg=None val_dataloader=None \
        val_evaluator=None > $R/$1.$2.train.log 2>&1; echo "$1 $2 train rc=$?"
    grep -m2 -E "Error|nan" $R/$1.$2.train.log
    [ -f $W/iter_$3.pth ] && timeout 60 python3 tools/test.py $cfg $W/iter_$3.pth --work-dir $W/test \
        > $R/$1.$2.test.log 2>&1 && echo "$1 $2 test ok"
}
det mask-rcnn_sgformer-s bfloat16 100
det mask-rcnn_r50 bfloat16 100
det retinanet_crossformer-s bfloat16 100
det retinanet_crossformer-s float16 100
