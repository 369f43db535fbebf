#!/usr/bin/env bash
# Create (or update) the project's environment with the pinned OpenMMLab stack.
#
# Idempotent: a second run only checks what is already there. mmcv 2.1.0 has no wheel for new
# torch; it is built from the PyPI source (CPU ops: ~25 min on 2 cores; CUDA ops: ~1.5 h on 2 cores,
# minutes on 16) and cached outside the repo under a key of the torch version, the CUDA version and
# the GPU architectures (tools/mmcv_build.py), so fresh clones on the machine reuse it and a CPU-only
# wheel is never reused where CUDA ops are needed, nor the other way round.
#
# Usage: bash tools/setup_env.sh                    (creates ./.venv)
# Env:   VENV             environment to create or reuse (default .venv; an existing conda env or
#                         venv works: VENV=$CONDA_PREFIX)
#        PYTHON           interpreter for a new venv (default python3.11 or python3)
#        TORCH            torch version to install (default 2.14.1), or "installed" to keep the torch
#                         the environment already has
#        TORCHVISION      its torchvision (default: the one paired with TORCH, 0.(minor+15).*)
#        TORCH_INDEX_URL  package index for torch/torchvision, e.g. https://download.pytorch.org/whl/cu121
#        NUMPY            numpy requirement (default: "numpy<2" for torch < 2.3, else any)
#        FORCE_CUDA       1: build mmcv's CUDA ops, 0: CPU ops only, unset: CUDA ops iff a GPU is seen
#        TORCH_CUDA_ARCH_LIST  GPU architectures for the CUDA ops (default: the visible GPUs')
#        MAX_JOBS         parallel compile jobs (default: the number of cores)
#        MAMBAOUT_MM_CACHE     wheel cache (default ~/.cache/mambaout-mm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
CACHE="${MAMBAOUT_MM_CACHE:-$HOME/.cache/mambaout-mm}"

TORCH="${TORCH:-2.14.1}"
MMENGINE_VERSION=0.10.7
MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0
MMSEG_VERSION=1.2.2
MMPRETRAIN_VERSION=1.2.0

STEP="start"
trap 'echo "setup_env: step \"$STEP\" failed (exit $?); see the output above." >&2' ERR
step() { STEP="$1"; echo "==> $1"; }
# need_gib N DIR...: stop before a large install where a disk has less than N GiB free (pip would
# fail midway with "No space left on device", the environment half installed).
need_gib() {
  local gib="$1" dir free; shift
  for dir in "$@"; do
    free=$(( $(df -Pk "$dir" | awk 'NR == 2 {print $4}') / 1048576 ))
    if [ "$free" -lt "$gib" ]; then
      echo "setup_env: step \"$STEP\" needs about $gib GiB free on the disk of $dir;" \
           "it has $free GiB. Free some (old virtual environments;" \
           "${TMPDIR:-/tmp}/pytest-of-$(id -un), where failed test runs keep their files)" \
           "or point VENV or TMPDIR at a larger disk." >&2
      exit 1
    fi
  done
}

step "create virtual environment $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

if [ "$TORCH" = installed ]; then
  step "use the torch already installed in $VENV"
  "$PY" -c "import torch, torchvision" || {
    echo "setup_env: TORCH=installed, but $PY cannot import torch and torchvision." >&2; exit 1; }
else
  MINOR="$(echo "$TORCH" | cut -d. -f2)"
  TORCHVISION="${TORCHVISION:-0.$((MINOR + 15)).*}"
  INDEX=()
  [ -n "${TORCH_INDEX_URL:-}" ] && INDEX=(--index-url "$TORCH_INDEX_URL")
  step "install torch $TORCH, torchvision $TORCHVISION ${TORCH_INDEX_URL:+from $TORCH_INDEX_URL}"
  # torch with its CUDA libraries: ~3 GB of wheels unpacked to ~5 GB (2.1.2)
  if [ "$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)" != "$TORCH" ]; then
    need_gib 10 "$VENV" "${TMPDIR:-/tmp}"
  fi
  "${PIP[@]}" "${INDEX[@]}" "torch==$TORCH" "torchvision==$TORCHVISION"
fi
TORCH_FOUND="$("$PY" -c 'import torch; print(torch.__version__)')"
if [ -z "${NUMPY:-}" ]; then
  NUMPY="$("$PY" -c 'import torch; v = tuple(map(int, torch.__version__.split(".")[:2])); print("numpy<2" if v < (2, 3) else "numpy")')"
fi

# Every later install keeps to it (opencv-python, pulled in by mmengine, would otherwise upgrade it).
export PIP_CONSTRAINT="$VENV/numpy-constraint.txt"
echo "$NUMPY" > "$PIP_CONSTRAINT"
case "$NUMPY" in *"<2"*) echo "opencv-python<4.11" >> "$PIP_CONSTRAINT" ;; esac  # 4.11+ need numpy 2

step "install build tools (setuptools<82 for mmcv's pkg_resources) and $NUMPY"
"${PIP[@]}" "setuptools>=77.0.3,<82" wheel ninja psutil "$NUMPY"

step "install mmengine $MMENGINE_VERSION"
"${PIP[@]}" "mmengine==$MMENGINE_VERSION"

step "plan the mmcv $MMCV_VERSION build for torch $TORCH_FOUND"
PLAN="$("$PY" "$ROOT/tools/mmcv_build.py" plan)"
eval "$PLAN"   # MMCV_FORCE_CUDA, MMCV_ARCHS, MMCV_KEY, MMCV_CPATH
WHEELS="$CACHE/wheels/mmcv-$MMCV_VERSION-$MMCV_KEY"
if ! "$PY" -c "import mmcv; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null \
    || ! "$PY" "$ROOT/tools/mmcv_build.py" check >/dev/null 2>&1; then
  if ! ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    JOBS="${MAX_JOBS:-$(nproc)}"
    if [ "$MMCV_FORCE_CUDA" = 1 ]; then
      step "build mmcv $MMCV_VERSION with CUDA ops for $MMCV_ARCHS ($JOBS jobs; ~1.5 h on 2 cores; cached in $WHEELS)"
    else
      step "build mmcv $MMCV_VERSION with CPU ops ($JOBS jobs; ~25 min on 2 cores; cached in $WHEELS)"
    fi
    BUILD="$(mktemp -d)"
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
      "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    # torch >= 2.6 headers need C++20 (older ones build with it too); mmcv 2.1.0 asks for C++14/17.
    sed -i -E "s/-std=c\+\+1[47]/-std=c++20/g" "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    grep -q -- "-std=c++20" "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$WHEELS"
    # The compiler's progress ([n/N] and the source file) is shown; the whole log is kept.
    LOG="$BUILD/build.log"
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA="$MMCV_FORCE_CUDA" \
      TORCH_CUDA_ARCH_LIST="$MMCV_ARCHS" MAX_JOBS="$JOBS" CPATH="$MMCV_CPATH${CPATH:+:$CPATH}" \
      "$PY" -m pip wheel --disable-pip-version-check -v --no-deps --no-build-isolation . \
      -w "$BUILD/dist") >"$LOG" 2>&1 &
    BUILD_PID=$!
    tail -n +1 -f --pid="$BUILD_PID" "$LOG" | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]' \
      | sed -u -E 's|^\s*(\[[0-9]+/[0-9]+\]).* -c ([^ ]+).*|   \1 \2|; s| /[^ ]*/mmcv/ops/csrc/| |' || true
    if ! wait "$BUILD_PID"; then
      tail -40 "$LOG" >&2
      echo "setup_env: the mmcv build failed; its whole log: $LOG" >&2
      false
    fi
    mv "$BUILD"/dist/mmcv-"$MMCV_VERSION"-*.whl "$WHEELS/"
    rm -rf "$BUILD"
  fi
  step "install mmcv $MMCV_VERSION from $WHEELS"
  "${PIP[@]}" --force-reinstall --no-deps "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl
  "${PIP[@]}" addict packaging Pillow pyyaml yapf opencv-python
fi

step "check mmcv's ops on this machine's device"
"$PY" "$ROOT/tools/mmcv_build.py" check

step "install mmdet $MMDET_VERSION, mmsegmentation $MMSEG_VERSION, timm and test tools"
# mmpretrain: the ConvNeXt of the peers' configs that tools/get_flops.py counts beside ours;
# openmim: `mim search`/`mim train` in the tests, with setuptools kept (openxlab pins 60)
"${PIP[@]}" "mmdet==$MMDET_VERSION" "mmsegmentation==$MMSEG_VERSION" ftfy regex \
  "mmpretrain==$MMPRETRAIN_VERSION" timm safetensors pycocotools matplotlib pytest pytest-xdist "ruff==0.17.6" \
  "openmim==0.3.9" "setuptools>=77.0.3,<82"

step "install the ONNX export and deployment tools where torch has the dynamo exporter (>= 2.6)"
if "$PY" -c "import sys, torch; sys.exit(not hasattr(torch.export.Dim, 'AUTO'))" 2>/dev/null; then
  "${PIP[@]}" onnx onnxscript onnxruntime openvino nncf
else
  echo "   skipped: torch $TORCH_FOUND exports ONNX through TorchScript only (tools/export_onnx.py needs 2.6)"
fi

step "install mambaout-mm (editable)"
"${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"

step "check the stack imports"
"$PY" - <<'PY'
import mmcv, mmcv.ops, mmdet, mmengine, mmseg, numpy, timm, torch
import mambaout_mm
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, GPU seen: {torch.cuda.is_available()}), "
      f"numpy {numpy.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (ops), "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, timm {timm.__version__}")
PY
STEP="done"
echo "==> environment ready: $VENV (activate: source $VENV/bin/activate)"
