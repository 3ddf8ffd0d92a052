#!/usr/bin/env bash
# Issue 12 item 2: the maintained OneDL stack on one H200. onedl-mmcv 2.3.6 is built there from its source
# distribution with CUDA ops for sm_90; then a Mask R-CNN and an UperNet demo config train with
# tools/train.py --amp (bf16) and are evaluated with tools/test.py, on the fork's mmengine/mmdet/mmseg/mmpretrain.
#
# Carry `.whl-onedl/` (made on the CPU machine, ~16 MB; the GPU machine has no network):
#   src/onedl_mmcv-2.3.6.tar.gz            pip download --no-deps --no-binary :all: onedl-mmcv==2.3.6
#   onedl_*.whl                             the other four (pure Python: onedl-mmengine's wheel, and
#                                           `pip wheel --no-deps` of the mmdetection/mmsegmentation/mmpretrain sdists)
#   deps/*.whl                              what the GPU machine lacks (the pure-Python needs from ../../shared/device)
#   build/setuptools-81*.whl                for the build only (mmcv's setup.py imports pkg_resources)
# and run from the repository root:   bash docs/benchmarks/scripts/h200_onedl.sh
#
# The build runs in its own process session (setsid), so it outlives a call that reaches its 10-minute limit;
# run the same command again within the machine's idle window and it waits for that build instead of starting
# another. Writes onedl_gpu.log (every log) and onedl_gpu_summary.md to $OUT.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/onedl_out}; R=/tmp/onedl; B=/tmp/onedl-build; mkdir -p $R $B $OUT
W=.whl-onedl
finish() {
    for f in $B/build.log $R/*.log; do echo "=== $f"; tail -n 80 "$f"; done > $OUT/onedl_gpu.log 2>&1
    cp $R/summary.md $OUT/onedl_gpu_summary.md 2>/dev/null
    cat $R/summary.md 2>/dev/null
}
trap finish EXIT

# 1. onedl-mmcv with CUDA ops (16 cores; a wheel in $B/dist when done).
if ! ls $B/dist/onedl_mmcv-*.whl > /dev/null 2>&1; then
    if [ ! -e $B/started ]; then
        touch $B/started
        python3 -m pip install -q --no-index --no-deps --target $B/tools $W/build/*.whl
        tar -xzf $W/src/onedl_mmcv-2.3.6.tar.gz -C $B
        setsid bash -c "cd $B/onedl_mmcv-2.3.6 && PYTHONPATH=$B/tools MMCV_WITH_OPS=1 FORCE_CUDA=1 \
            TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python3 -m pip wheel --no-build-isolation --no-deps --no-index \
            -w $B/dist . > $B/build.log 2>&1; echo \$? > $B/build.rc" < /dev/null > /dev/null 2>&1 &
    fi
    # Wait for it, leaving this call enough time to report.
    for _ in $(seq 1 105); do [ -e $B/build.rc ] && break; sleep 5; done
    if [ ! -e $B/build.rc ]; then echo "onedl-mmcv still building: run this script again"; exit 3; fi
    if ! ls $B/dist/onedl_mmcv-*.whl > /dev/null 2>&1; then echo "onedl-mmcv build failed"; exit 1; fi
fi

# 2. The fork, its needs and nothing of OpenMMLab's; transformers 5 breaks mmpretrain's multimodal imports.
python3 -m pip uninstall -q -y transformers > /dev/null 2>&1
python3 -m pip install -q --no-index --no-deps --target /tmp/site-onedl $B/dist/onedl_mmcv-*.whl $W/onedl_*.whl \
    $W/deps/*.whl $W/build/*.whl > $R/install.log 2>&1 || exit 1
export PYTHONPATH=/tmp/site-onedl:$PWD
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; git log --oneline -1
  python3 -c "import torch, mmcv, mmengine, mmdet, mmseg, mmpretrain, mmvit_backbones.stack as s
print('torch', torch.__version__, 'mmcv', mmcv.__version__, 'mmengine', mmengine.__version__, 'mmdet', mmdet.__version__,
      'mmseg', mmseg.__version__, 'mmpretrain', mmpretrain.__version__)
from mmcv.ops import RoIAlign, nms; import torch
x = torch.rand(1, 4, 8, 8, device='cuda'); r = torch.tensor([[0, 0, 0, 4, 4.]], device='cuda')
print('RoIAlign cuda', tuple(RoIAlign((2, 2), 1.0, 0)(x, r).shape))"; } > $R/env.log 2>&1

# 3. Train (--amp, bf16) and test one Mask R-CNN and one UperNet demo config at COCO / ADE20K geometry.
python3 tools/misc/generate_demo_data.py data/demo --size 512 --num-train 48 --num-val 8 > $R/data.log 2>&1
ITERS=${ITERS:-60}
echo "| config | train rc | s/iter (last) | test rc | metrics |" > $R/summary.md
echo "|---|---|---|---|---|" >> $R/summary.md
for c in mask-rcnn_sgformer-s_shapes-coco-geometry upernet_pale-t_shapes-ade-geometry; do
    Wd=$R/work/$c
    timeout 200 python3 tools/train.py configs/demo/gpu/$c.py --amp --work-dir $Wd --cfg-options \
        train_cfg.max_iters=$ITERS default_hooks.checkpoint.interval=$ITERS val_cfg=None val_dataloader=None \
        val_evaluator=None > $R/$c.train.log 2>&1
    trc=$?
    timeout 90 python3 tools/test.py configs/demo/gpu/$c.py $Wd/iter_$ITERS.pth --work-dir $Wd/test \
        > $R/$c.test.log 2>&1
    vrc=$?
    t=$(grep -o ' time: [0-9.]*' $R/$c.train.log | tail -1)
    m=$(grep -E 'bbox_mAP|mIoU' $R/$c.test.log | tail -1 | sed 's/.*Iter(test)[^ ]* *//' | cut -c1-120)
    echo "| $c | $trc |$t | $vrc | $m |" >> $R/summary.md
done
echo >> $R/summary.md; cat $R/env.log >> $R/summary.md
