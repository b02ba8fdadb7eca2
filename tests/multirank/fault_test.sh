#!/usr/bin/env bash
# Runs fault_driver under mpiexec and checks what the surviving ranks report.
#
#   fault_test.sh <scenario> <np> <timeout_s> <fault_driver> <mpiexec> [mpiexec args...]
#   FAULT_DRIVER_ARGS=--nccl fault_test.sh ...     the same over NCCL (one GPU per rank)
#
# Open MPI's runtime kills the whole job as soon as one rank exits with a non-zero code, which
# would hide what the survivors do. `--mca orte_abort_on_non_zero_status 0` (Open MPI 4.x) turns
# that off, so every rank runs to its own end and this script asserts on the collected output:
#   killed, stalled: each survivor (ranks 0 .. np-2) printed exactly
#     "FAULT-TEST rank R: caught after S s: EP all_reduce_max timed out after T s on rank R
#      (a peer died or stalled)" with T <= S < T + 3, and mpiexec returned within its limit;
#     stalled: the stalled rank, once awake, failed in its EP all_reduce_max as well.
#   abort: the failing rank printed "moequant: rank 1: injected failure on rank 1", mpiexec
#     returned non-zero well before the others' 60 s deadline (MPI_Abort ended them), and no
#     other rank reported anything.
set -u
scenario=$1 np=$2 t=$3 driver=$4
shift 4
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s.%N)
# shellcheck disable=SC2086  # FAULT_DRIVER_ARGS holds separate words
timeout 90 "$@" --mca orte_abort_on_non_zero_status 0 -np "$np" "$driver" "$scenario" \
  --timeout-s "$t" ${FAULT_DRIVER_ARGS:-} >"$log" 2>&1
rc=$?
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
sed 's/^/  | /' "$log"
echo "mpiexec exit code $rc after $elapsed s"

fail() {
  echo "FAIL: $*"
  exit 1
}
[ "$rc" -ne 124 ] || fail "mpiexec did not finish within 90 s"

case "$scenario" in
  killed | stalled)
    for ((r = 0; r < np - 1; ++r)); do
      line=$(grep -E "^FAULT-TEST rank $r: caught after [0-9.]+ s: EP all_reduce_max timed out after $t s on rank $r \(a peer died or stalled\)$" "$log") ||
        fail "survivor rank $r did not report the EP timeout"
      s=$(sed -E 's/.*caught after ([0-9.]+) s.*/\1/' <<<"$line")
      awk -v s="$s" -v t="$t" 'BEGIN { exit !(s >= t && s < t + 3) }' ||
        fail "rank $r failed after $s s; expected within [$t, $t + 3) s"
    done
    if [ "$scenario" = stalled ]; then
      # The stalled rank wakes up to find its peers gone: it must fail too, not hang.
      grep -E "^FAULT-TEST rank $((np - 1)): caught after [0-9.]+ s: EP all_reduce_max" "$log" >/dev/null ||
        fail "the stalled rank did not fail after waking up"
    fi
    ;;
  abort)
    [ "$rc" -ne 0 ] || fail "mpiexec returned 0 after a rank called abort_job"
    grep -q "moequant: rank 1: injected failure on rank 1" "$log" ||
      fail "the failing rank did not print its error"
    ! grep -q "FAULT-TEST rank" "$log" || fail "a surviving rank went on instead of being ended"
    awk -v e="$elapsed" 'BEGIN { exit !(e < 30) }' || fail "the job took $elapsed s to end"
    ;;
  *) fail "unknown scenario $scenario" ;;
esac
echo "PASS ($scenario, $np ranks, $elapsed s)"
