#!/usr/bin/env bash
# launch/torchrun.sh - run a moequant binary (not a Python script) under torchrun, one GPU per rank.
#
#   launch/torchrun.sh --nproc-per-node 2 build/src/tool/moequant quantize --device cuda ...
#   launch/torchrun.sh --nnodes 2 --node-rank 0 --master-addr host0 --nproc-per-node 8 \
#       build/src/tool/moequant quantize --device cuda ...
#
# Every argument goes to torchrun unchanged (torchrun options first, then the binary and its
# arguments); the wrapper adds --no-python, so torchrun executes the binary itself, and sets:
#   NCCL_NVLS_ENABLE=0      always: NVLink SHARP (multicast) stays off
#   OMP_NUM_THREADS         cores of this machine / --nproc-per-node, unless already set
# Each rank reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, takes GPU LOCAL_RANK
# and gets the ncclUniqueId through torchrun's own TCPStore. torchrun ranks need GPUs and NCCL:
# for CPU ranks use launch/mpirun.sh. TORCHRUN overrides the launcher.
set -euo pipefail

per_node=""
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    --nproc-per-node | --nproc_per_node) per_node="${args[i + 1]:-}"; break ;;
    --nproc-per-node=* | --nproc_per_node=*) per_node="${args[i]#*=}"; break ;;
  esac
done

export NCCL_NVLS_ENABLE=0
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
  cores=$(nproc)
  if [[ "$per_node" =~ ^[0-9]+$ && "$per_node" -gt 0 ]]; then
    export OMP_NUM_THREADS=$((cores / per_node > 0 ? cores / per_node : 1))
  else
    export OMP_NUM_THREADS=1
  fi
fi

exec "${TORCHRUN:-torchrun}" --no-python "$@"
