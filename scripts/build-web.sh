#!/usr/bin/env bash
# Build the leaderboard front end (web/) and copy it into the Python package (llem/assets/site/),
# which `llem results site` serves, so that `pip install` is enough for users without Node.js.
#
#   bash scripts/build-web.sh            # npm ci (from web/package-lock.json), vite build, copy
#   bash scripts/build-web.sh --check    # build into a temporary folder and compare with the
#                                        # shipped files; exit 1 if they differ
#   bash scripts/build-web.sh --deps     # only npm ci (what the tests need: vitest, a fresh build)
#
# Needs Node.js >= 20.19 and npm. The build is deterministic (content-hashed file names, a locked
# dependency tree): the same sources give byte-identical files, which tests/web/test_assets.py checks.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
web=$root/web
dest=$root/llem/assets/site
check=0; deps=0
case "${1:-}" in
  --check) check=1 ;;
  --deps) deps=1 ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "build-web.sh: unknown option $1 (allowed: --check, --deps)" >&2; exit 2 ;;
esac
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "build-web.sh: needs Node.js >= 20.19 and npm (https://nodejs.org)" >&2; exit 2; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || { echo "build-web.sh: Node.js $(node -v) is too old; Vite needs >= 20.19" >&2; exit 2; }
cd "$web"
# npm ci (which deletes node_modules first) only when the lockfile changed since the last one
if ! cmp -s package-lock.json node_modules/.llem-installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.llem-installed-lock
fi
[ "$deps" = 1 ] && { echo "build-web.sh: web/node_modules matches web/package-lock.json" >&2; exit 0; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx --no-install tsc --noEmit
npx --no-install vite build --outDir "$out/site" --emptyOutDir --logLevel warn
if [ "$check" = 1 ]; then
  if diff -r "$out/site" "$dest" >/dev/null; then
    echo "build-web.sh: llem/assets/site matches a fresh build" >&2
  else
    diff -rq "$out/site" "$dest" >&2 || true
    echo "build-web.sh: llem/assets/site differs from a fresh build of web/: run scripts/build-web.sh and commit it" >&2
    exit 1
  fi
  exit 0
fi
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -r "$out/site" "$dest"
echo "build-web.sh: built web/ into llem/assets/site ($(du -sk "$dest" | cut -f1) KiB)" >&2
