#!/usr/bin/env bash
# One H200, one call (< 10 min), session 3 (issues 14/15): the speed of the backbones where users train.
#   (a) tools/analysis_tools/benchmark_pipeline.py: Mask R-CNN 1x configs at 2x800x1216, bf16 --amp, one process per
#       config, 10 warm-up + 30 timed iterations (mmengine's time and data_time): mmdet's Swin-T (the peer),
#       mmdet's R-50, SG-Former-S, Pale-T, CrossFormer-S, on synthetic COCO-format data of 800x1216 images;
#   (b) benchmark_backbone.py, eager training, fp32 and bf16, cls (64x224) and dense (2x800x1216): Pale-T,
#       CrossFormer-S, SG-Former-S and timm's Swin-T;
#   (d) the same on the base commit's package (.bench_base/mmvit_backbones: the "before" figures);
#   (c) pytest tests/test_cuda tests/test_models.
# Run from the repository root with the wheels in .whl/ (../../../shared/device/README.md) and the base package
# in .bench_base/ (git archive 1432d82 mmvit_backbones | tar -x -C .bench_base), both carried:
#   bash docs/benchmarks/scripts/h200_s3_speed.sh
# Writes pipeline_maskrcnn.json, backbone_eager_after.json, backbone_eager_before.json, cuda_tests.log,
# s3_speed.log (every log) and s3_speed_summary.md to $OUT.
set -u
OUT=${OUT:-/tmp/s3_out}; R=/tmp/s3
. docs/benchmarks/scripts/device_setup.sh
S=docs/benchmarks/scripts
finish() {
    python3 $S/summarize_speed.py --pipeline $R/pipeline_maskrcnn.json \
        --backbone after=$R/backbone_eager_after.json before=$R/backbone_eager_before.json \
        > $R/s3_speed_summary.md 2> $R/summary.err
    cp $R/*.json $R/cuda_tests.log $R/s3_speed_summary.md $OUT/ 2>/dev/null
    for f in $R/env.txt $R/install.log $R/data.log $R/*.out $R/summary.err; do echo "=== $f"; cat $f; done \
        > $OUT/s3_speed.log 2>&1
    cat $R/s3_speed_summary.md
}
trap finish EXIT
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; git log --oneline -1; } > $R/env.txt 2>&1

# Synthetic COCO-format data: 1216x800 images, so the 1x pipeline's Resize((1333, 800), keep_ratio) keeps them.
timeout 60 python3 tools/misc/generate_demo_data.py data/bench_coco --size 800 --width 1216 --num-train 64 \
    --num-val 1 > $R/data.log 2>&1
COCO="model.backbone.init_cfg=None train_dataloader.dataset.data_root=data/bench_coco/
      train_dataloader.dataset.ann_file=annotations/instances_train.json
      train_dataloader.dataset.data_prefix.img=images/training/
      train_dataloader.dataset.metainfo.classes=(circle,square,triangle)"

# (a) ~150 s (at most 220): five configs of ~30 s each (start, build, 40 iterations).
timeout 220 python3 tools/analysis_tools/benchmark_pipeline.py \
    configs/benchmarks/mask-rcnn_swin-t_mmdet_1x_coco.py configs/benchmarks/mask-rcnn_r50_1x_coco.py \
    configs/sgformer/mask-rcnn_sg-s_1x_coco.py configs/pale/mask-rcnn_pale-t_1x_coco.py \
    configs/crossformer/mask-rcnn_crossformer-s_1x_coco.py \
    --peer configs/benchmarks/mask-rcnn_swin-t_mmdet_1x_coco.py --amp --warmup 10 --iters 30 \
    --work-dir $R/pipeline --out $R/pipeline_maskrcnn.json --cfg-options $COCO > $R/pipeline.out 2>&1
echo "(a) pipeline rc=$?"

# (b) ~100 s and (d) ~80 s (at most 120 and 90): 16 and 12 measurements of 5 + 3x10 iterations.
B="tools/analysis_tools/benchmark_backbone.py --mode train --warmup 5 --iters 10 --repeats 3"
timeout 120 python3 $B PaleTransformer:t CrossFormer:s SGFormer:s timm:swin_tiny_patch4_window7_224 \
    --out $R/backbone_eager_after.json > $R/backbone_after.out 2>&1
echo "(b) backbone after rc=$?"
[ -d .bench_base/mmvit_backbones ] && PYTHONPATH=$PWD/.bench_base:/tmp/site timeout 30 python3 -c \
    'import mmvit_backbones; print("before:", mmvit_backbones.__file__)' > $R/backbone_before.out 2>&1 &&
PYTHONPATH=$PWD/.bench_base:/tmp/site timeout 90 python3 $B PaleTransformer:t CrossFormer:s SGFormer:s \
    --out $R/backbone_eager_before.json >> $R/backbone_before.out 2>&1
echo "(d) backbone before rc=$?"

# (c) ~90 s (at most 100).
timeout 100 python3 -m pytest tests/test_cuda tests/test_models -q -p no:cacheprovider -rs > $R/cuda_tests.log 2>&1
echo "(c) cuda tests rc=$?"; tail -3 $R/cuda_tests.log
