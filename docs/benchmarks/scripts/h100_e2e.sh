#!/usr/bin/env bash
# One H100: the four pipelines and the ResNet-50 yardstick, trained with tools/train.py --amp (bf16)
# on the demo data at COCO / ADE20K geometry, then evaluated with tools/test.py. Writes to $OUT.
set -u
R=/tmp/e2e; mkdir -p $R
trap 'python3 docs/benchmarks/scripts/summarize_runs.py $R/work/* --out $R/summary.json > $R/summary.log 2>&1;
      cp $R/summary.json $OUT/ 2>/dev/null; tar czf $OUT/e2e_logs.tgz -C $R --exclude="*.pth" work' EXIT
export PYTHONUNBUFFERED=1
python3 tools/misc/generate_demo_data.py data/demo --size 512 --num-train 96 --num-val 8 > /dev/null
ITERS=${ITERS:-200}
for c in mask-rcnn_sgformer-s mask-rcnn_r50 retinanet_crossformer-s upernet_pale-t fpn_crossformerpp-s; do
    cfg=$(ls configs/demo/gpu/${c}_shapes-*.py)
    W=$R/work/$c
    timeout 150 python3 tools/train.py $cfg --amp --work-dir $W --cfg-options train_cfg.max_iters=$ITERS \
        default_hooks.checkpoint.interval=$ITERS val_cfg=None val_dataloader=None val_evaluator=None \
        > $R/$c.train.log 2>&1
    echo "$c train rc=$?"
    timeout 60 python3 tools/test.py $cfg $W/iter_$ITERS.pth --work-dir $W/test > $R/$c.test.log 2>&1
    echo "$c test rc=$?"
done
