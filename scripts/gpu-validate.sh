#!/usr/bin/env bash
# scripts/gpu-validate.sh OUT_DIR [--dry-run]
#
# The GPU suite end to end on one GPU, in one command: install the checkout (offline, no
# dependencies), print the environment, time a bf16 matmul, calibrate the gpu suite, run it, and
# collect into OUT_DIR:
#   log.txt                      everything printed here
#   environment.json, matmul.json  what `env` and `peak` found
#   suite/gpu.toml               the suite run (a copy: calibration writes its targets beside it)
#   targets-gpu.toml             the targets file the run used (commit it as suites/targets/gpu.toml)
#   results/                     the results store and the report: index.html, figures/, summary.json
#   trials.csv, curves.csv       `step7bench export`
#   gpu-h200.json                a gate baseline (`step7bench baseline save`; dry-run-cpu.json in a dry run)
# and print a table of the claims' verdicts last. Calibration and run are given deadlines that end
# them within WINDOW_S of calibration's start (suites/gpu.toml states the arithmetic).
#
# --dry-run runs the same steps on the CPU with the micro presets and tiny budgets (`--set`
# overrides of the same suite), in well under a minute: tests/test_gpu_script.py runs it.
#
# Environment: PYTHON (default python3) is the interpreter holding torch; GPU_VALIDATE_NO_PIP=1
# never calls pip (an uninstalled checkout then runs from PYTHONPATH with written metadata).
# Exit status: 0 when every step succeeded, 1 when one failed (what completed stays in OUT_DIR),
# 2 on a usage error.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$REPO/scripts/gpu_validate.py"
PY="${PYTHON:-python3}"

WINDOW_S=420         # calibrate + run end within 7 minutes: the budget suites/gpu.toml is sized for
CALIBRATE_S=120      # calibration's own deadline: 2-3x its estimate (24 s of trials, 10 s of data, the start)
RUN_RESERVE_S=30     # of the window, kept for what `run` does outside its deadline: start-up and the report

usage() {
    echo "usage: $0 OUT_DIR [--dry-run]" >&2
    exit 2
}

OUT=""
DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $arg" >&2; usage ;;
        *) [[ -z "$OUT" ]] || { echo "error: one OUT_DIR only" >&2; usage; }; OUT="$arg" ;;
    esac
done
[[ -n "$OUT" ]] || usage
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/log.txt"
# Everything printed goes to the log too; stderr joins stdout so the log reads in order.
exec > >(tee -a "$LOG") 2>&1
# A command that fails outside a step (which reports its own failures) ends the script: say where.
trap 'echo "error: gpu-validate.sh stopped at line $LINENO (exit status $?); what completed is in $OUT" >&2' ERR

if (( DRY_RUN )); then
    MODE="dry run (CPU, micro presets)"
    DEVICE=cpu
    BASELINE_NAME=dry-run-cpu.json
    # The same suite, shrunk: micro models, 30 steps (past micro's 20 warm-up steps), one seed per
    # arm, two calibration seeds (a median), one process (no worker start-ups).
    OVERRIDES=(--set digits.preset=micro --set grammar-lm.preset=micro
               --set digits.max_steps=30 --set grammar-lm.max_steps=30
               --set digits.max_seconds=20 --set grammar-lm.max_seconds=20
               --set technique.transfer.pretrain_steps=10)
    RUN_ARGS=(--seeds 1 --threads 1 --jobs 1)
    CALIBRATE_ARGS=(--seeds 2 --threads 1 --jobs 1)
else
    MODE="GPU"
    DEVICE=cuda
    BASELINE_NAME=gpu-h200.json
    OVERRIDES=()
    RUN_ARGS=()
    CALIBRATE_ARGS=()
fi

# This checkout first on the import path, installed or not.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # progress lines reach the log as they happen

FAILED=()
declare -a SUMMARY=()

note() { printf '\n== %s\n' "$*"; }

die() {
    echo "error: $*" >&2
    print_steps
    echo "gpu-validate: stopped; what completed is in $OUT" >&2
    exit 1
}

# step NAME COMMAND...: run one step, print its time, record a failure; returns the command's status.
step() {
    local name="$1" start status=0
    shift
    note "$name"
    local shown=("$@")
    [[ "$1" != s7b ]] || shown=(step7bench "${@:2}")
    printf '$'; printf ' %q' "${shown[@]}"; printf '\n'
    start=$(date +%s)
    "$@" || status=$?
    local took=$(( $(date +%s) - start ))
    if (( status == 0 )); then
        SUMMARY+=("ok      $name (${took} s)")
    else
        echo "!! step '$name' FAILED with exit status $status after ${took} s (see $LOG)" >&2
        SUMMARY+=("FAILED  $name (exit $status, ${took} s)")
        FAILED+=("$name")
    fi
    return "$status"
}

print_steps() {
    note "steps"
    local line
    for line in ${SUMMARY[@]+"${SUMMARY[@]}"}; do echo "  $line"; done
}

s7b() { "$PY" -m step7bench.cli "$@"; }

minutes() { awk -v s="$1" 'BEGIN { printf "%.2f", s / 60 }'; }

# -- install: offline, no dependencies --------------------------------------------------------

has_metadata() { "$PY" -c 'import importlib.metadata as m; m.version("step7bench")' 2>/dev/null; }

install_project() {
    if has_metadata; then
        echo "step7bench is installed: $("$PY" -c 'import importlib.metadata as m; print(m.version("step7bench"))')"
        return 0
    fi
    # setuptools is the build backend; a bare venv may lack it, and there is no registry to fetch it.
    if [[ "${GPU_VALIDATE_NO_PIP:-0}" != 1 ]] && "$PY" -c 'import setuptools' 2>/dev/null \
        && "$PY" -m pip install --quiet --no-deps --no-build-isolation --no-index -e "$REPO" && has_metadata; then
        echo "installed with pip (editable, no dependencies)"
        return 0
    fi
    # No install possible: run from PYTHONPATH, with the metadata an install would write, so the
    # version the report and --version read is there.
    echo "no pip install (setuptools or pip missing, or GPU_VALIDATE_NO_PIP=1): running from PYTHONPATH"
    "$PY" "$HELPER" shim "$OUT/site" || return 1
    export PYTHONPATH="$PYTHONPATH:$OUT/site"
    has_metadata
}

require_cuda() {
    "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
        || { echo "torch sees no CUDA device; on a machine without one, use --dry-run" >&2; return 1; }
}

# -- the suite: a copy in OUT_DIR, so calibration writes its targets there -------------------------

prepare_suite() {
    mkdir -p "$OUT/suite/targets"
    cp "$REPO/suites/gpu.toml" "$OUT/suite/gpu.toml"
    # Tunings recorded earlier on the GPU carry over: `calibrate --no-tune` keeps a targets file's tunings.
    if (( ! DRY_RUN )) && [[ -f "$REPO/suites/targets/gpu.toml" ]]; then
        cp "$REPO/suites/targets/gpu.toml" "$OUT/suite/targets/gpu.toml"
    fi
}

# -- the steps --------------------------------------------------------------------------------

echo "gpu-validate: $MODE into $OUT ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
step install install_project || die "the project could not be installed or imported"
step environment "$PY" "$HELPER" env "$OUT/environment.json" || die "the environment could not be read"
if (( ! DRY_RUN )); then
    step "CUDA present" require_cuda || die "no GPU"
fi
step "bf16 matmul peak" "$PY" "$HELPER" peak "$OUT/matmul.json" || true
prepare_suite
SUITE="$OUT/suite/gpu.toml"

# Both deadlines are measured from here: calibration gets CALIBRATE_S, the run what is left of
# WINDOW_S less RUN_RESERVE_S, so the two end within WINDOW_S whatever calibration took.
window_end=$(( $(date +%s) + WINDOW_S ))
step calibrate s7b calibrate --suite "$SUITE" --device "$DEVICE" --no-tune --deadline "$(minutes "$CALIBRATE_S")" \
    ${CALIBRATE_ARGS[@]+"${CALIBRATE_ARGS[@]}"} ${OVERRIDES[@]+"${OVERRIDES[@]}"} \
    || die "calibration failed: without targets the suite cannot run"
cp "$OUT/suite/targets/gpu.toml" "$OUT/targets-gpu.toml"

run_left_s=$(( window_end - $(date +%s) - RUN_RESERVE_S ))
(( run_left_s > 0 )) || die "calibration left no time of the ${WINDOW_S} s window for the run"
# A failed trial (exit 1) still leaves a report of the rest: go on to collect it.
step run s7b run --suite "$SUITE" --device "$DEVICE" --deadline "$(minutes "$run_left_s")" \
    --results "$OUT/results" ${RUN_ARGS[@]+"${RUN_ARGS[@]}"} ${OVERRIDES[@]+"${OVERRIDES[@]}"} || true

step "export trials" s7b export --results "$OUT/results" --what trials --format csv --output "$OUT/trials.csv" || true
step "export curves" s7b export --results "$OUT/results" --what curves --format csv --output "$OUT/curves.csv" || true
step "gate baseline" s7b baseline save --results "$OUT/results" --out "$OUT/$BASELINE_NAME" || true
if [[ -f "$OUT/trials.csv" ]]; then
    step "time per step" "$PY" "$HELPER" step-times "$OUT/trials.csv" || true
fi

print_steps
note "verdicts (from $OUT/results/summary.json)"
if ! "$PY" "$HELPER" verdicts "$OUT/results/summary.json"; then
    echo "no verdicts: $OUT/results/summary.json is missing or holds no claims" >&2
    FAILED+=("verdicts")
fi
# The verdicts stay the last lines printed: a failed step is in the steps list above them.
if (( ${#FAILED[@]} > 0 )); then
    exit 1
fi
