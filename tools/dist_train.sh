#!/usr/bin/env bash
# Distributed training on one machine: bash tools/dist_train.sh CONFIG GPUS [train.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) on every node.
set -euo pipefail
# shellcheck source=tools/project_python.sh
source "$(dirname "$0")/project_python.sh"
torchrun_tool "$2" train.py "$1" --launcher pytorch "${@:3}"
