#!/usr/bin/env bash
# Two H200s, one call. (1) The mmdet pipelines end to end (one GPU each, two at a time): Mask R-CNN SG-Former-S,
# Mask R-CNN R-50 and RetinaNet CrossFormer-S with --amp --amp-dtype float16, 100 iterations, then tools/test.py;
# a 1-iteration bf16 attempt of the ResNet-50 Mask R-CNN records why bf16 fails in mmdet.
# (2) tools/dist_train.sh on a SyncBN demo config: 1 GPU x 4 images vs 2 GPUs x 2 images; a 2-GPU run killed
# after its iteration-20 checkpoint and resumed with --resume. Writes to $OUT.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1 PYTHON=python3
R=/tmp/x2; mkdir -p $R
trap 'python3 docs/benchmarks/scripts/summarize_runs.py $R/e2e/* --skip 30 --out $R/e2e_summary.json > /dev/null 2>&1;
      cp $R/*.json $OUT/ 2>/dev/null; tar czf $OUT/x2_logs.tgz -C $R --exclude="*.pth" .' EXIT
CFG=configs/demo/gpu/fpn_pale-slim_shapes-128_syncbn.py
C=docs/benchmarks/scripts/compare_checkpoints.py
nvidia-smi --query-gpu=name,driver_version --format=csv > $R/env.txt
python3 tools/misc/generate_demo_data.py data/demo --size 512 --num-train 96 --num-val 8 > /dev/null
python3 tools/misc/generate_demo_data.py data/demo128 --num-train 64 --num-val 8 > /dev/null
DEMO128="train_dataloader.dataset.data_root=data/demo128/ val_dataloader.dataset.data_root=data/demo128/ test_dataloader.dataset.data_root=data/demo128/"
det() {  # det GPU NAME DTYPE ITERS
    cfg=$(ls configs/demo/gpu/${2}_shapes-*.py); W=$R/e2e/$2
    CUDA_VISIBLE_DEVICES=$1 timeout 100 python3 tools/train.py $cfg --amp --amp-dtype $3 --work-dir $W \
        --cfg-options train_cfg.max_iters=$4 default_hooks.checkpoint.interval=$4 val_cfg=None val_dataloader=None \
        val_evaluator=None > $R/$2.$3.train.log 2>&1; echo "$2 $3 train rc=$?"
    [ -f $W/iter_$4.pth ] && CUDA_VISIBLE_DEVICES=$1 timeout 40 python3 tools/test.py $cfg $W/iter_$4.pth \
        --work-dir $W/test > $R/$2.test.log 2>&1 && echo "$2 test ok"
}
one() { CUDA_VISIBLE_DEVICES=0 timeout 60 python3 tools/train.py $CFG --work-dir $R/one \
    --cfg-options train_dataloader.batch_size=4 $DEMO128 > $R/one.log 2>&1; echo "one GPU rc=$?"; }
( det 0 mask-rcnn_sgformer-s float16 100; one
  CUDA_VISIBLE_DEVICES=0 timeout 40 python3 tools/train.py configs/demo/gpu/mask-rcnn_r50_shapes-coco-geometry.py \
    --amp --work-dir $R/bf16_attempt --cfg-options train_cfg.max_iters=1 > $R/bf16_attempt.log 2>&1
  echo "bf16 attempt rc=$?" ) &
( det 1 mask-rcnn_r50 float16 100; det 1 retinanet_crossformer-s float16 100 ) &
wait
grep -m3 -E "Error|error" $R/bf16_attempt.log
PORT=29501 timeout 60 bash tools/dist_train.sh $CFG 2 --work-dir $R/two --cfg-options $DEMO128 > $R/two.log 2>&1
echo "two GPUs rc=$?"; grep -m2 -hoE "Distributed training: True|GPU number: 2" $R/two/*/*.log
(PORT=29502 setsid bash tools/dist_train.sh $CFG 2 --work-dir $R/resumed --cfg-options $DEMO128 > $R/resumed_a.log 2>&1 &
 echo $! > $R/pid; wait) &
for i in $(seq 1 60); do [ -f $R/resumed/iter_20.pth ] && break; sleep 1; done; sleep 1
kill -TERM -- -$(cat $R/pid) 2>/dev/null; sleep 2; kill -KILL -- -$(cat $R/pid) 2>/dev/null; sleep 1
ls $R/resumed | tr '\n' ' '; echo
PORT=29503 timeout 60 bash tools/dist_train.sh $CFG 2 --work-dir $R/resumed --resume --cfg-options $DEMO128 \
    > $R/resumed_b.log 2>&1; echo "resumed rc=$?"; grep -m1 -o "resumed epoch.*" $R/resumed_b.log
python3 $C $R/one/iter_40.pth $R/two/iter_40.pth --runs $R/one $R/two --out $R/one_vs_two.json
python3 $C $R/two/iter_40.pth $R/resumed/iter_40.pth --runs $R/two $R/resumed --out $R/two_vs_resumed.json
