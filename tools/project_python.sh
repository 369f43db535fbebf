# Sourced by the launch scripts: the project's Python ($PYTHON if set, else the .venv that
# tools/setup_env.sh made, else the active environment's python), with the repo on PYTHONPATH so
# that mambaout_mm is found without an install (as mmdet's tools/dist_train.sh does).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
