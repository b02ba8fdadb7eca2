#!/usr/bin/env bash
# launch/slurm_srun.sh - run a moequant binary on the ranks of a Slurm allocation with srun.
#
#   salloc -N 2 --ntasks-per-node 4 --gpus-per-task 1 --cpus-per-task 8
#   launch/slurm_srun.sh build/src/tool/moequant quantize --device cuda ...
#   launch/slurm_srun.sh -N 1 -n 8 build/src/tool/moequant quantize ...      # CPU ranks
#
# Every argument goes to srun unchanged (srun options first, then the binary and its
# arguments). srun starts the ranks itself and Open MPI joins them through PMIx, hence
# --mpi=pmix (MOEQUANT_SRUN_MPI overrides it, e.g. pmix_v4); moequant recognizes such ranks by
# PMIX_RANK and takes GPU = SLURM_LOCALID. The wrapper sets:
#   NCCL_NVLS_ENABLE=0      always: NVLink SHARP (multicast) stays off
#   OMP_NUM_THREADS         SLURM_CPUS_PER_TASK when Slurm sets it, else 1, unless already set
set -euo pipefail

export NCCL_NVLS_ENABLE=0
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

exec "${SRUN:-srun}" --mpi="${MOEQUANT_SRUN_MPI:-pmix}" --export=ALL "$@"
