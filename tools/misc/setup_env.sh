#!/usr/bin/env bash
# Idempotent environment set-up for mmvit-backbones (called by `make setup`).
#
#   STACK           openmmlab (default: mmcv 2.1.0, mmdet 3.3.0, mmseg 1.2.2, mmpretrain 1.2.0, mmengine 0.10.x)
#                   or onedl (the maintained fork: onedl-mmcv 2.3.6, onedl-mmdetection 3.5.1,
#                   onedl-mmsegmentation 1.4.2, onedl-mmpretrain 1.3.6, onedl-mmengine 0.10.12)
#   VENV            virtual environment to create/use (default .venv; .venv-onedl for STACK=onedl)
#   PYTHON          interpreter that creates it (default python3)
#   PIP_FIND_LINKS  optional local wheelhouse (e.g. a prebuilt mmcv 2.1.0 or onedl-mmcv 2.3.6 wheel)
#   TORCH_SPEC      torch requirement installed when no torch is present
#                   (default "torch==2.14.1 torchvision==0.29.1")
#
# Every step checks first and skips what is already there, so a second run takes seconds.
set -euo pipefail

STACK=${STACK:-openmmlab}
case "$STACK" in
    openmmlab) DEFAULT_VENV=.venv; MMCV_DIST=mmcv; MMCV_VERSION=2.1.0 ;;
    # The fork keeps the import names (mmcv, mmdet, ...) under other distribution names.
    onedl) DEFAULT_VENV=.venv-onedl; MMCV_DIST=onedl-mmcv; MMCV_VERSION=2.3.6 ;;
    *) echo "STACK must be openmmlab or onedl, got '$STACK'" >&2; exit 2 ;;
esac
VENV=${VENV:-$DEFAULT_VENV}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
# torch >= 2.6 needs setuptools >= 77.0.3; mmcv's setup.py and mmengine import pkg_resources, gone in 82.
SETUPTOOLS_SPEC='setuptools>=77.0.3,<82'

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

if ! "$PY" -c "import setuptools, sys; v = tuple(int(p) for p in setuptools.__version__.split('.')[:2]); sys.exit(not ((77, 0) <= v < (82, 0)))" 2>/dev/null; then
    say "installing $SETUPTOOLS_SPEC and wheel"
    "${PIP[@]}" install -q "$SETUPTOOLS_SPEC" wheel
fi

if "$PY" -c "import torch, torchvision" 2>/dev/null; then
    say "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed: kept"
else
    say "installing $TORCH_SPEC"
    # shellcheck disable=SC2086
    "${PIP[@]}" install $TORCH_SPEC
fi

mmcv_ok() {
    "$PY" - <<PYEOF 2>/dev/null
import mmcv
from mmcv.ops import nms  # compiled ops must be present; mmcv-lite is not enough
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
from importlib.metadata import version
version('$MMCV_DIST')  # the stack's own distribution, not the other stack's
PYEOF
}

if mmcv_ok; then
    say "$MMCV_DIST $MMCV_VERSION with compiled ops already installed: kept"
elif "${PIP[@]}" install -q --no-build-isolation --only-binary "$MMCV_DIST" "$MMCV_DIST==$MMCV_VERSION" 2>/dev/null && mmcv_ok; then
    say "$MMCV_DIST $MMCV_VERSION installed from a prebuilt wheel${PIP_FIND_LINKS:+ ($PIP_FIND_LINKS)}"
else
    say "no prebuilt $MMCV_DIST $MMCV_VERSION wheel for this Python/torch: building it from source with its"
    say "compiled ops. This takes 20-40 minutes on 2 cores. To skip it, install a prebuilt wheel for your"
    say "torch/CUDA instead (OpenMMLab: \`pip install -U openmim && mim install mmcv==2.1.0\`; OneDL: the fork's"
    say "wheel index, see the README) or set PIP_FIND_LINKS to a folder holding such a wheel, then run this again."
    src=$(mktemp -d)
    "${PIP[@]}" download -q --no-deps --no-binary :all: -d "$src" "$MMCV_DIST==$MMCV_VERSION"
    mkdir "$src/tree"
    tar -xzf "$src"/*.tar.gz -C "$src/tree"
    tree=$(echo "$src"/tree/*)
    # torch >= 2.14's headers need C++20; mmcv's setup.py forces -std=c++14 or -std=c++17.
    if "$PY" -c "import sys, torch; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 14))"; then
        sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$tree/setup.py"
    fi
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" install --no-build-isolation "$tree"
    rm -rf "$src"
    mmcv_ok || { say "mmcv build finished but its ops do not import"; exit 1; }
fi

if "$PY" -c "import mmvit_backbones, mmdet, mmseg, mmpretrain, pytest, onnx, onnxscript, onnxruntime" 2>/dev/null \
        && "${PIP[@]}" check >/dev/null 2>&1; then
    say "mmvit_backbones and its dependencies already installed: kept"
else
    say "installing mmvit_backbones (editable) with the $STACK stack (mmdet, mmseg, mmpretrain) and test tools"
    # --no-build-isolation: the fork's four packages are source distributions built with the setuptools above.
    "${PIP[@]}" install -q --no-build-isolation -e ".[$STACK,tests]"
fi
say "environment ready ($STACK stack): $VENV"
