#!/usr/bin/env bash
# llem's overhead against a bare generate loop, and where it comes from (issue 3, item 10).
#   bash benchmarks/overhead/gpu_overhead.sh OUT_DIR [BATCHES] [CYCLES]
# Runs benchmarks/gpu_validation/gpu_validation.py (ABBA blocks, bare loop on llem's own model object) in these
# variants, each into OUT_DIR/<variant>:
#   static           torch.compile + CUDA graphs (GPU-bound: host noise no longer swamps 1%)
#   static-bare-llem same, without the Zeus/raw observers and without llem's sampler thread
#   static-sampler   same, sampler on, no observers (isolates the sampler)
#   static-sampler-process  same, the sampler in a child process (energy.sampler=process)
#   eager            default HF generate (host-CPU bound, noisy)
#   static-percall   static, llem's default sampler, no observers, every call timed (--per-call)
#   static-percall-llem-inputs  same, the bare loop fed llem's own prepared input tensors
# AFTER_EACH (a shell command) runs after every variant, e.g. to copy results off a machine
# with a time limit: AFTER_EACH='tar czf "$HOME/results/ov.tgz" -C /tmp ov'. VARIANTS (space-separated
# names) runs only those, to split the work across commands with a time limit.
set -uo pipefail
out=${1:?usage: gpu_overhead.sh OUT_DIR [BATCHES] [CYCLES]}
batches=${2:-8,1}
cycles=${3:-12}
here=$(cd "$(dirname "$0")" && pwd)
common=(--batches "$batches" --cycles "$cycles" --warmup 3 --quantisation-target 0.02)
run() {
  local name=$1; shift
  [[ -z "${VARIANTS:-}" || " $VARIANTS " == *" $name "* ]] || return 0
  mkdir -p "$out/$name"
  python3 "$here/../gpu_validation/gpu_validation.py" --out "$out/$name" "${common[@]}" "$@" > "$out/$name/log.txt" 2>&1
  echo "$name: exit $?" >> "$out/variants.txt"
  grep '^| [0-9]' "$out/$name/validation.md" | sed "s/^/$name /" >> "$out/variants.txt" 2>/dev/null
  eval "${AFTER_EACH:-true}"
}
run static --static-cache
run static-bare-llem --static-cache --no-observers --override energy.sample_interval_s=null
run static-sampler --static-cache --no-observers
run static-sampler-process --static-cache --no-observers --override energy.sampler=process
run eager
run static-percall --static-cache --no-observers --per-call
run static-percall-llem-inputs --static-cache --no-observers --per-call --bare-inputs llem
cat "$out/variants.txt" 2>/dev/null
