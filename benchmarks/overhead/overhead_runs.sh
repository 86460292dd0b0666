#!/usr/bin/env bash
# Repeated llem-vs-bare ABBA runs (issue 3, item 10), each its own process, for pooling with
# benchmarks/overhead/pool_overhead.py. Its verdict counts runs, not blocks (a random-effects interval on
# runs - 1 df: a run's variance from 4-8 blocks is too noisy to weight runs by), so many short
# runs beat a few long ones.
#   bash benchmarks/overhead/overhead_runs.sh [--check] OUT_DIR SECONDS CYCLES BATCH[/OVERRIDE] ...
# Starts runs in rotation over the batches (llem's default configuration with the static cache:
# the sampler on, no observers) while the next one is expected to end within SECONDS of the
# start (expected: the longest run of that entry so far, or 150 s before the first). A batch
# named twice runs twice as often. BATCH/OVERRIDE runs that batch with one llem override
# (e.g. 1/measurement.gc_freeze=false), so one machine can alternate two configurations; such
# runs pool only with runs of the same override. BATCH/--FLAG[=VALUE] passes a gpu_validation.py
# flag instead (e.g. 1/--switch-warmup=2; 1/--quantisation-target=0.2 gives batch 1 two-call
# windows, many more blocks a run than 5 s windows where calls wander for seconds at a time:
# docs/validation/HISTORY.md, 2026-11-28 03:00). Parts chain: 1/--quantisation-target=0.2/
# energy.sample_interval_s=null is two-call windows with llem's sampler off. Run k writes OUT_DIR/b<batch>-r<k>/ (with an
# override: b<batch>-<override, punctuation as _>-r<k>/); AFTER_EACH (a shell command) runs
# after every run, e.g. to copy results off a machine with a time limit.
# --check first: check the arguments only (exit 2 on bad ones, 0 otherwise) and start nothing.
set -uo pipefail
check_only=0
[[ ${1:-} == --check ]] && { check_only=1; shift; }
out=${1:?usage: overhead_runs.sh OUT_DIR SECONDS CYCLES BATCH [BATCH ...]}
budget=${2:?seconds}
cycles=${3:?cycles}
shift 3
for v in "budget SECONDS=$budget" "cycles CYCLES=$cycles"; do
  [[ ${v#*=} =~ ^[1-9][0-9]*$ ]] || { echo "overhead_runs.sh: ${v#* } is not a positive whole number" >&2; exit 2; }
done
(($# > 0)) || { echo "overhead_runs.sh: give at least one batch size" >&2; exit 2; }
# each entry parsed once: its batch, run-folder name, label and gpu_validation.py arguments (the
# checked parts hold no space or glob character, so a space-joined list splits back safely)
entries=("$@") batches=() names=() labels=() extra=()
for e in "$@"; do
  b=${e%%/*}
  [[ $b =~ ^[1-9][0-9]*$ ]] || { echo "overhead_runs.sh: batch $b is not a positive whole number" >&2; exit 2; }
  args=""
  if [[ $e == */* ]]; then
    IFS=/ read -ra parts <<< "${e#*/}"
    for part in "${parts[@]}"; do
      if [[ $part =~ ^--[a-z][a-z0-9-]*(=[A-Za-z0-9_.+-]+)?$ ]]; then
        args+=" $part"
      elif [[ $part =~ ^[A-Za-z_][A-Za-z0-9_.]*=[A-Za-z0-9_.+-]+$ ]]; then
        args+=" --override $part"
      else
        echo "overhead_runs.sh: $part (in $e) is neither an llem override key=value nor a gpu_validation.py flag --name[=value] (letters, digits, _ . + -)" >&2; exit 2
      fi
    done
    names+=("b$b-$(tr -c 'A-Za-z0-9\n' _ <<< "${e#*/}")")
    labels+=("batch-$b (${e#*/})")
  else
    names+=("b$b")
    labels+=("batch-$b")
  fi
  batches+=("$b")
  extra+=("$args")
done
((check_only)) && exit 0
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
declare -A longest
start=$SECONDS
k=0
while :; do
  for i in "${!batches[@]}"; do
    b=${batches[$i]} name=${names[$i]} label=${labels[$i]} e=${entries[$i]}
    read -ra ov <<< "${extra[$i]}"
    expect=${longest[$e]:-150}
    if ((SECONDS - start + expect > budget)); then
      echo "stopping: the next $label run (~${expect} s) would pass ${budget} s" | tee -a "$out/runs.txt"
      exit 0
    fi
    dir="$out/$name-r$k"
    t0=$SECONDS
    python3 "$here/../gpu_validation/gpu_validation.py" --out "$dir" --batches "$b" --cycles "$cycles" --warmup 3 \
      --quantisation-target 0.02 --static-cache --no-observers "${ov[@]}" > "$dir.log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    ((took > ${longest[$e]:-0})) && longest[$e]=$took
    echo "$name-r$k: exit $rc, ${took} s $(grep '^| [0-9]' "$dir/validation.md" 2>/dev/null)" | tee -a "$out/runs.txt"
    eval "${AFTER_EACH:-true}"
    k=$((k + 1))
  done
done
