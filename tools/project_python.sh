# Sourced by the launch scripts: the project's Python ($PYTHON if set, else the .venv that
# tools/setup_env.sh made, else the active environment's python), with the repo on PYTHONPATH so
# that mambaout_mm is found without an install (as mmdet's tools/dist_train.sh does).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# torchrun_tool GPUS SCRIPT ARGS...: SCRIPT (beside this file) under torch.distributed.run on this
# node; multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
torchrun_tool() {
  exec "$PYTHON" -m torch.distributed.run \
      --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
      --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
      --nproc_per_node="$1" "$ROOT/tools/$2" "${@:3}"
}
