#!/usr/bin/env bash
# One H200, one call (< 10 min), session 3 (issue 14 items 1 and 4): the UperNet pipelines and compile=True.
#   (a) tools/analysis_tools/benchmark_pipeline.py: UperNet 160k configs at 2x512x512, bf16 --amp, 10 warm-up + 30
#       timed iterations: mmseg's Swin-T (the peer), Pale-T, SG-Former-S, CrossFormer-S, on synthetic ADE20K-format
#       data of 512x512 images;
#   (b) docs/benchmarks/scripts/compile_shapes.py: compile=True (per-block torch.compile, dynamic sizes, inductor)
#       of Pale-T, CrossFormer-S and SG-Former-S, bf16 training steps over 40 batch shapes of a COCO 1x schedule:
#       compile time (first step), graphs and recompiles, steady-state step time against eager on the same shapes.
# Run from the repository root with the wheels in .whl/ (../../../shared/device/README.md), carried:
#   bash docs/benchmarks/scripts/h200_s3_compile.sh
# Writes pipeline_upernet.json, compile_shapes.json, s3_compile.log (every log) and s3_compile_summary.md to $OUT.
set -u
OUT=${OUT:-/tmp/s3c_out}; R=/tmp/s3c
. docs/benchmarks/scripts/device_setup.sh
S=docs/benchmarks/scripts
finish() {
    python3 $S/summarize_speed.py --pipeline $R/pipeline_upernet.json > $R/s3_compile_summary.md 2> $R/summary.err
    python3 - >> $R/s3_compile_summary.md 2>> $R/summary.err <<'PY'
import json
report = json.load(open('/tmp/s3c/compile_shapes.json'))
print(f"\n{report['distinct_shapes']} distinct batch shapes in {len(report['shapes'])} steps\n")
print('| backbone | mode | first step s | steps run | graphs (1st step) | graphs later | graph breaks '
      '| median step s (2nd half) |')
print('|---|---|---|---|---|---|---|---|')
for m in report['models']:
    for mode in ('compiled', 'eager'):
        e = m.get(mode, {})
        if 'error' in e or not e:
            print(f"| {m['name']} | {mode} | {e.get('error', 'not run')[:100]} | | | | | |")
            continue
        print(f"| {m['name']} | {mode} | {e['first_step_seconds']} | {len(e['steps'])} | {e['graphs_first_step']} "
              f"| {e['graphs_compiled_later']} | {e['graph_breaks']} | {e['median_second_half_seconds']} |")
PY
    cp $R/*.json $R/s3_compile_summary.md $OUT/ 2>/dev/null
    for f in $R/env.txt $R/install.log $R/data.log $R/*.out $R/summary.err; do echo "=== $f"; cat $f; done \
        > $OUT/s3_compile.log 2>&1
    cat $R/s3_compile_summary.md
}
trap finish EXIT
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; } > $R/env.txt 2>&1

timeout 60 python3 tools/misc/generate_demo_data.py data/bench_ade --size 512 --num-train 64 --num-val 1 \
    > $R/data.log 2>&1

# (a) ~150 s: four configs of ~35 s each (capped at 150 s).
timeout 150 python3 tools/analysis_tools/benchmark_pipeline.py \
    configs/benchmarks/upernet_swin-t_mmseg_160k_ade20k-512x512.py \
    configs/pale/upernet_pale-t_8xb2-160k_ade20k-512x512.py configs/sgformer/upernet_sg-s_8xb2-160k_ade20k-512x512.py \
    configs/crossformer/upernet_crossformer-s_8xb2-160k_ade20k-512x512.py \
    --peer configs/benchmarks/upernet_swin-t_mmseg_160k_ade20k-512x512.py --amp --warmup 10 --iters 30 \
    --work-dir $R/pipeline --out $R/pipeline_upernet.json \
    --cfg-options model.backbone.init_cfg=None train_dataloader.dataset.data_root=data/bench_ade \
    > $R/pipeline.out 2>&1
echo "(a) pipeline rc=$?"

# (b) ~330 s: per backbone at most 80 s of compiled steps, then the same shapes eagerly (~10 s).
timeout 330 python3 $S/compile_shapes.py PaleTransformer:t CrossFormer:s SGFormer:s --steps 40 --time-limit 80 \
    --out $R/compile_shapes.json > $R/compile_shapes.out 2>&1
echo "(b) compile rc=$?"
