#!/usr/bin/env bash
# One H200, issues 14/15 after session 4's levers (written in session 4, which had no device; not run yet).
# Two calls of < 10 min each, PART=1 then PART=2 (the machine stays warm between them only briefly; each call
# installs what it needs):
#   PART=1 (a) benchmark_pipeline.py, Mask R-CNN 1x at 2x800x1216, bf16 --amp, 10 warm-up + 30 timed iterations:
#              mmdet Swin-T (the peer), R-50, SG-Former-S, Pale-T, CrossFormer-S;
#          (b) benchmark_backbone.py, eager training, fp32 and bf16, cls (64x224) and dense (2x800x1216), peak
#              memory: Pale-T, CrossFormer-S, SG-Former-S and timm's Swin-T (the peer of the backbone rows);
#          (c) the same three on session 3's package (.bench_s3/mmvit_backbones: the "before" of these levers).
#   PART=2 (d) benchmark_pipeline.py, UperNet 160k at 2x512x512: mmseg Swin-T (peer), Pale-T, SG-Former-S,
#              CrossFormer-S;
#          (e) Mask R-CNN with model.backbone.compile=True (per-block inductor) for Pale-T, CrossFormer-S,
#              SG-Former-S (first iterations include compiling; the JSON keeps every iteration's time);
#          (f) compile_shapes.py: compile time and recompiles over 40 COCO 1x batch shapes;
#          (g) pytest tests/test_cuda tests/test_models (the CUDA tests of the Triton / fast paths).
# Carry .whl/ (../../../shared/device/README.md) and .bench_s3/ (git archive d62b4ec mmvit_backbones | tar -x -C
# .bench_s3) and run from the repository root:  PART=1 bash docs/benchmarks/scripts/h200_s4_speed.sh
set -u
PART=${PART:-1}
OUT=${OUT:-/tmp/s4_out}; R=/tmp/s4_$PART
. docs/benchmarks/scripts/device_setup.sh
S=docs/benchmarks/scripts
finish() {
    local pipelines=() backbones=()
    for f in $R/pipeline_*.json; do [ -e "$f" ] && pipelines+=("$f"); done
    for l in after before; do [ -e $R/backbone_eager_$l.json ] && backbones+=("$l=$R/backbone_eager_$l.json"); done
    python3 $S/summarize_speed.py --pipeline "${pipelines[@]}" --backbone "${backbones[@]}" \
        > $R/s4_speed_summary_$PART.md 2> $R/summary.err
    cp $R/*.json $R/cuda_tests.log $R/s4_speed_summary_$PART.md $OUT/ 2>/dev/null
    for f in $R/env.txt $R/install.log $R/data.log $R/*.out $R/summary.err; do echo "=== $f"; cat $f; done \
        > $OUT/s4_speed_$PART.log 2>&1
    cat $R/s4_speed_summary_$PART.md
}
trap finish EXIT
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; git log --oneline -1; } > $R/env.txt 2>&1

MASK_RCNN="configs/sgformer/mask-rcnn_sg-s_1x_coco.py configs/pale/mask-rcnn_pale-t_1x_coco.py
           configs/crossformer/mask-rcnn_crossformer-s_1x_coco.py"
COCO="model.backbone.init_cfg=None train_dataloader.dataset.data_root=data/bench_coco/
      train_dataloader.dataset.ann_file=annotations/instances_train.json
      train_dataloader.dataset.data_prefix.img=images/training/
      train_dataloader.dataset.metainfo.classes=(circle,square,triangle)"
P="tools/analysis_tools/benchmark_pipeline.py --amp --warmup 10 --iters 30"
if [ "$PART" = 1 ]; then
    timeout 60 python3 tools/misc/generate_demo_data.py data/bench_coco --size 800 --width 1216 --num-train 64 \
        --num-val 1 > $R/data.log 2>&1
    timeout 240 python3 $P configs/benchmarks/mask-rcnn_swin-t_mmdet_1x_coco.py configs/benchmarks/mask-rcnn_r50_1x_coco.py \
        $MASK_RCNN --peer configs/benchmarks/mask-rcnn_swin-t_mmdet_1x_coco.py --work-dir $R/pipeline \
        --out $R/pipeline_maskrcnn.json --cfg-options $COCO > $R/pipeline.out 2>&1
    echo "(a) pipeline rc=$?"
    B="tools/analysis_tools/benchmark_backbone.py --mode train --warmup 5 --iters 10 --repeats 3"
    timeout 170 python3 $B PaleTransformer:t CrossFormer:s SGFormer:s timm:swin_tiny_patch4_window7_224 \
        --out $R/backbone_eager_after.json > $R/backbone_after.out 2>&1
    echo "(b) backbone after rc=$?"
    PYTHONPATH=$PWD/.bench_s3:/tmp/site timeout 130 python3 $B PaleTransformer:t CrossFormer:s SGFormer:s \
        --out $R/backbone_eager_before.json > $R/backbone_before.out 2>&1
    echo "(c) backbone before rc=$?"
else
    timeout 60 python3 tools/misc/generate_demo_data.py data/bench_ade --size 512 --num-train 64 --num-val 1 \
        > $R/data.log 2>&1
    timeout 180 python3 $P configs/benchmarks/upernet_swin-t_mmseg_160k_ade20k-512x512.py \
        configs/pale/upernet_pale-t_8xb2-160k_ade20k-512x512.py configs/sgformer/upernet_sg-s_8xb2-160k_ade20k-512x512.py \
        configs/crossformer/upernet_crossformer-s_8xb2-160k_ade20k-512x512.py \
        --peer configs/benchmarks/upernet_swin-t_mmseg_160k_ade20k-512x512.py --work-dir $R/pipeline_seg \
        --out $R/pipeline_upernet.json --cfg-options model.backbone.init_cfg=None \
        train_dataloader.dataset.data_root=data/bench_ade > $R/pipeline_seg.out 2>&1
    echo "(d) upernet pipeline rc=$?"
    timeout 60 python3 tools/misc/generate_demo_data.py data/bench_coco --size 800 --width 1216 --num-train 64 \
        --num-val 1 >> $R/data.log 2>&1
    timeout 200 python3 $P $MASK_RCNN --work-dir $R/pipeline_compiled --out $R/pipeline_maskrcnn_compiled.json \
        --cfg-options $COCO model.backbone.compile=True > $R/pipeline_compiled.out 2>&1
    echo "(e) compiled pipeline rc=$?"
    timeout 150 python3 $S/compile_shapes.py PaleTransformer:t CrossFormer:s SGFormer:s --steps 40 --time-limit 40 \
        --out $R/compile_shapes.json > $R/compile_shapes.out 2>&1
    echo "(f) compile shapes rc=$?"
    timeout 100 python3 -m pytest tests/test_cuda tests/test_models -q -p no:cacheprovider -rs > $R/cuda_tests.log 2>&1
    echo "(g) cuda tests rc=$?"; tail -3 $R/cuda_tests.log
fi
