#!/usr/bin/env bash
# Distributed evaluation: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
set -euo pipefail
# shellcheck source=tools/project_python.sh
source "$(dirname "$0")/project_python.sh"
torchrun_tool "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
