#!/usr/bin/env bash
# Set up llem in ./.venv and, with --run, run the default experiment.
#
#   bash scripts/setup.sh            # .venv with llem[pytorch]
#   bash scripts/setup.sh --dev      # + test/dev extras (pytest, zeus, codecarbon, hadolint, matplotlib, datasets, lm-eval,
#                                    #   hydra-optuna-sweeper, llem serve and its test tools, playwright) and, where Node.js is installed, the front
#                                    #   end's npm packages (web/)
#   bash scripts/setup.sh --quality  # + lm-eval, for quality=lm_eval (docs/quality.md)
#   bash scripts/setup.sh --search   # + hydra-optuna-sweeper, for hydra/sweeper=optuna (docs/search.md)
#   bash scripts/setup.sh --serve    # + llem serve: the results API and web page (docs/serve.md)
#   bash scripts/setup.sh --run [llem run args...]   # set up, then `llem run` offline
#                                    # (run args with quality=lm_eval or hydra/sweeper=optuna install what they need)
#
# torch is pinned to 2.13.0, from pip's configured index (PyPI: on Linux a CUDA build) unless
# LLEM_TORCH_INDEX names another. On a machine without an NVIDIA GPU use the CPU build, which is
# far smaller and all such a machine can use:
#   LLEM_TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
# On a GPU machine, the build for the CUDA version its driver supports (e.g. .../whl/cu128).
# Environment: LLEM_VENV (default .venv), PYTHON (default python3), LLEM_TORCH_INDEX.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=${LLEM_VENV:-$root/.venv}
py=${PYTHON:-python3}
dev=0; run=0; quality=0; search=0; serve=0; run_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=1 ;;
    --quality) quality=1 ;;
    --search) search=1 ;;
    --serve) serve=1 ;;
    --run) run=1; shift; run_args=("$@"); break ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1 (allowed: --dev, --quality, --search, --serve, --run)" >&2; exit 2 ;;
  esac
  shift
done

"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || { echo "setup.sh: llem needs Python >= 3.10 ($py is $("$py" -V 2>&1))" >&2; exit 2; }

t0=$(date +%s)
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
export PIP_NO_INPUT=1

if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  echo "setup.sh: installing torch 2.13.0" >&2
  if [ -n "${LLEM_TORCH_INDEX:-}" ]; then
    "${pip[@]}" torch==2.13.0 --index-url "$LLEM_TORCH_INDEX"
  else
    "${pip[@]}" torch==2.13.0
  fi
fi
extras=pytorch
for a in "${run_args[@]+"${run_args[@]}"}"; do
  case "$a" in
    quality=lm_eval*) quality=1 ;;
    hydra/sweeper=optuna) search=1 ;;
  esac
done
[ "$quality" = 1 ] && extras="$extras,quality"
[ "$search" = 1 ] && extras="$extras,search"
[ "$serve" = 1 ] && extras="$extras,serve"
[ "$dev" = 1 ] && extras="pytorch,dev,zeus,codecarbon,plot,hf,quality,search,serve"
echo "setup.sh: installing llem[$extras] (editable)" >&2
# The constraint keeps pip from replacing the torch chosen above.
log=$(mktemp)
if ! "${pip[@]}" -e ".[$extras]" "torch==2.13.0" >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"; echo "setup.sh: pip install failed" >&2; exit 1
fi
rm -f "$log"
"$venv/bin/python" -c 'import llem, torch; print(f"setup.sh: llem {llem.__version__}, torch {torch.__version__}")' >&2
if [ "$dev" = 1 ]; then
  # The leaderboard front end ships prebuilt in llem/assets/site; its tests (vitest, and the check
  # that the shipped files equal a fresh build) need web/node_modules. Rebuilding the shipped files
  # is a deliberate step after changing web/ (scripts/build-web.sh), never a side effect of setup.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    echo "setup.sh: installing the front end's npm packages (web/)" >&2
    bash "$root/scripts/build-web.sh" --deps
  else
    echo "setup.sh: no Node.js: the front-end tests (tests/web) will be skipped; install Node.js >= 20.19 for them" >&2
  fi
fi
echo "setup.sh: ready in $(( $(date +%s) - t0 )) s ($venv)" >&2

if [ "$run" = 1 ]; then
  # Offline: the default experiment needs no download, and must never try one.
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
  exec "$venv/bin/llem" run "${run_args[@]}"
fi
