#!/usr/bin/env bash
# Create (or update) the project's virtual environment with the pinned OpenMMLab stack.
#
# Idempotent: a second run only checks what is already there. The mmcv wheel (ops built from
# the PyPI source, ~10 min on 2 cores) is cached outside the repo, keyed by the torch version,
# so fresh clones on the same machine reuse it.
#
# Usage: bash tools/setup_env.sh            (creates ./.venv)
# Env:   VENV (default .venv), PYTHON (default python3.11 or python3),
#        MAMBAOUT_MM_CACHE (default ~/.cache/mambaout-mm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
CACHE="${MAMBAOUT_MM_CACHE:-$HOME/.cache/mambaout-mm}"

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMENGINE_VERSION=0.10.7
MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0
MMSEG_VERSION=1.2.2

STEP="start"
trap 'echo "setup_env: step \"$STEP\" failed (exit $?); see the output above." >&2' ERR
step() { STEP="$1"; echo "==> $1"; }

step "create virtual environment $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

step "install torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION"
"${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

step "install build tools (setuptools<82 for mmcv's pkg_resources)"
"${PIP[@]}" "setuptools>=77.0.3,<82" wheel ninja psutil

step "install mmengine $MMENGINE_VERSION"
"${PIP[@]}" "mmengine==$MMENGINE_VERSION"

WHEELS="$CACHE/wheels/torch-$TORCH_VERSION"
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  if ! ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    step "build mmcv $MMCV_VERSION with ops (once, ~10 min on 2 cores; cached in $WHEELS)"
    BUILD="$(mktemp -d)"
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
      "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    # torch >= 2.6 headers need C++20; mmcv 2.1.0 asks for C++14/17.
    sed -i -E "s/-std=c\+\+1[47]/-std=c++20/g" "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    grep -q -- "-std=c++20" "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$WHEELS"
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
      "$PY" -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation . -w "$BUILD/dist")
    mv "$BUILD"/dist/mmcv-"$MMCV_VERSION"-*.whl "$WHEELS/"
    rm -rf "$BUILD"
  fi
  step "install mmcv $MMCV_VERSION from $WHEELS"
  "${PIP[@]}" --no-deps "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl
  "${PIP[@]}" addict packaging Pillow pyyaml yapf opencv-python
fi

step "install mmdet $MMDET_VERSION, mmsegmentation $MMSEG_VERSION, timm and test tools"
"${PIP[@]}" "mmdet==$MMDET_VERSION" "mmsegmentation==$MMSEG_VERSION" ftfy regex \
  timm safetensors pycocotools matplotlib pytest

step "install mambaout-mm (editable)"
"${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"

step "check the stack imports"
"$PY" - <<'PY'
import mmcv, mmcv.ops, mmdet, mmengine, mmseg, timm, torch
import mambaout_mm
print(f"torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (ops), "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, timm {timm.__version__}")
PY
STEP="done"
echo "==> environment ready: $VENV"
