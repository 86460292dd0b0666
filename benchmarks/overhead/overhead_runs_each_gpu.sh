#!/usr/bin/env bash
# benchmarks/overhead/overhead_runs.sh on every GPU of a multi-GPU machine at once, one rotation per GPU
# (CUDA_VISIBLE_DEVICES=<i>, so llem's meters and the bare arm's raw NVML read that GPU alone).
#   bash benchmarks/overhead/overhead_runs_each_gpu.sh OUT_DIR SECONDS CYCLES BATCH [BATCH ...]
# GPU i writes OUT_DIR/gpu<i>/. AFTER_EACH runs after every run with GPU=<i> in its environment,
# e.g. AFTER_EACH='tar czf $HOME/results/gpu$GPU.tgz -C /tmp/runs gpu$GPU'. The runs share the machine's
# CPUs, so pool_overhead.py counts them as runs of one machine (gpu_validation.py records its
# boot id). overhead_runs.sh --check checks the arguments before any GPU starts.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/overhead_runs.sh" --check "$@" || exit
out=$1
shift
n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
((n > 0)) || { echo "overhead_runs_each_gpu.sh: nvidia-smi lists no GPU" >&2; exit 2; }
mkdir -p "$out"
pids=()
for ((i = 0; i < n; i++)); do
  GPU=$i CUDA_VISIBLE_DEVICES=$i bash "$here/overhead_runs.sh" "$out/gpu$i" "$@" >> "$out/gpu$i.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
