#!/usr/bin/env bash
# launch/mpirun.sh - run a moequant binary on several ranks with Open MPI's mpirun.
#
#   launch/mpirun.sh -np 4 build/src/tool/moequant quantize --model M --out O --ep 4
#   launch/mpirun.sh -np 2 build/bench/bench_amax_sync --nccl      # one GPU per rank
#
# Every argument goes to mpirun unchanged (mpirun options first, then the binary and its
# arguments). The wrapper only adds what every moequant run needs:
#   NCCL_NVLS_ENABLE=0      always: NVLink SHARP (multicast) stays off
#   OMP_NUM_THREADS         cores of this machine / ranks, unless already set
#   -x VAR                  forwards those two (and MOEQUANT_COLLECTIVE_TIMEOUT_S when set) to
#                           every rank, remote nodes included
#   --allow-run-as-root     when run as root
#   --oversubscribe         when -np exceeds the cores of this machine
# CPU ranks talk over MPI; with GPUs (--device cuda / --nccl) MPI only hands out the
# ncclUniqueId and each rank takes GPU = its local rank. MPIRUN overrides the launcher.
set -euo pipefail

ranks=""
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    -np | -n | --np | -c) ranks="${args[i + 1]:-}"; break ;;
    -np=* | --np=* | -n=*) ranks="${args[i]#*=}"; break ;;
  esac
done

cores=$(nproc)
export NCCL_NVLS_ENABLE=0
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
  if [[ "$ranks" =~ ^[0-9]+$ && "$ranks" -gt 0 ]]; then
    export OMP_NUM_THREADS=$((cores / ranks > 0 ? cores / ranks : 1))
  else
    export OMP_NUM_THREADS=1
  fi
fi

extra=(-x NCCL_NVLS_ENABLE -x OMP_NUM_THREADS)
[[ -n "${MOEQUANT_COLLECTIVE_TIMEOUT_S:-}" ]] && extra+=(-x MOEQUANT_COLLECTIVE_TIMEOUT_S)
[[ "$(id -u)" -eq 0 ]] && extra+=(--allow-run-as-root)
if [[ "$ranks" =~ ^[0-9]+$ && "$ranks" -gt "$cores" ]]; then
  extra+=(--oversubscribe)
fi

exec "${MPIRUN:-mpirun}" "${extra[@]}" "$@"
