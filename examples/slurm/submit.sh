#!/usr/bin/env bash
# examples/slurm/submit.sh SUITE N [RESULTS]
# Queue a suite as a Slurm job array of N shards (tasks 1..N), then a merge-and-report job that
# starts once every shard has succeeded. Run from the checkout, with step7bench on PATH in the
# jobs (or VENV=/path/to/.venv exported). DEVICE, JOBS and VENV pass through to the jobs.
set -euo pipefail

if (( $# < 2 || $# > 3 )); then
    echo "usage: $0 SUITE N [RESULTS]" >&2
    exit 2
fi
SUITE="$1"
SHARDS="$2"
RESULTS="${3:-reports/step7bench-slurm}"
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || { echo "error: N must be a positive integer, got '$SHARDS'" >&2; exit 2; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --parsable prints "jobid" or "jobid;cluster"; the dependency wants the id alone.
array_job="$(sbatch --parsable --array="1-$SHARDS" --export="ALL,SUITE=$SUITE,SHARDS=$SHARDS,RESULTS=$RESULTS" \
    "$HERE/shard.sbatch")"
array_job="${array_job%%;*}"
merge_job="$(sbatch --parsable --dependency="afterok:$array_job" --export="ALL,RESULTS=$RESULTS" "$HERE/merge.sbatch")"
echo "shards: job array $array_job (tasks 1-$SHARDS); merge and report: job ${merge_job%%;*}"
echo "report, when done: $RESULTS/merged/index.html"
