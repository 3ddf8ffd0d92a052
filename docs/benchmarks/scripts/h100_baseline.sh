#!/usr/bin/env bash
# Baseline on one H100: every backbone and timm's Swin-T, cls + dense geometry, fp32/bf16, infer/train,
# with profiler tables; SDPA backend timings; channels-last A/B. Writes to $OUT.
set -u
B=tools/analysis_tools/benchmark_backbone.py
REF=docs/benchmarks/authors_figures.json
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv > $OUT/env.txt
python3 -c "import torch, timm; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), timm.__version__)" >> $OUT/env.txt
mkdir -p /tmp/prof
python3 docs/benchmarks/scripts/sdpa_backends.py --out /tmp/prof/sdpa.json > /tmp/prof/sdpa.log 2>&1
python3 $B CrossFormer:s PaleTransformer:t SGFormer:s timm:swin_tiny_patch4_window7_224 \
    --reference $REF --out $OUT/baseline.json --profile /tmp/prof 2>&1 | tee $OUT/baseline.log | grep -v '^{'
python3 $B CrossFormerPP:s --geometry cls --options 'group_size=(4,4,14,7)' 'interval=(4,2,1,1)' \
    --reference $REF --out $OUT/baseline_cfpp.json --profile /tmp/prof 2>&1 | grep -v '^{'
python3 $B SGFormer:b PaleTransformer:s --geometry cls --reference $REF --out $OUT/baseline_b.json 2>&1 | grep -v '^{'
python3 $B CrossFormer:s PaleTransformer:t SGFormer:s --geometry cls --precision bf16 --channels-last \
    --out $OUT/channels_last.json 2>&1 | grep -v '^{'
tar czf $OUT/prof.tgz -C /tmp prof
