#!/usr/bin/env bash
# Build llem's per-backend images, one per backend, each FROM that backend's official image:
#   llenergymeasure/<backend>:<llem version>-cuda<CUDA major>
# This is the name llem's container runner looks for (llem.runners.container.image_name).
#
# Usage: scripts/build-images.sh [--dry-run] [BACKEND ...]      (default: pytorch vllm tensorrt)
# Override a base image (and its CUDA major, which goes into the tag) per backend:
#   PYTORCH_BASE_IMAGE=pytorch/pytorch:<tag> PYTORCH_CUDA_MAJOR=12 scripts/build-images.sh pytorch
#   (VLLM_BASE_IMAGE / VLLM_CUDA_MAJOR, TENSORRT_BASE_IMAGE / TENSORRT_CUDA_MAJOR likewise)
# Extra `docker build` flags: DOCKER_BUILD_ARGS="--pull --no-cache" scripts/build-images.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dry_run=0
backends=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
    pytorch|vllm|tensorrt) backends+=("$arg") ;;
    *) echo "build-images.sh: backend=$arg is not allowed; allowed: pytorch, vllm, tensorrt, --dry-run" >&2; exit 2 ;;
  esac
done
[ "${#backends[@]}" -eq 0 ] && backends=(pytorch vllm tensorrt)

version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/llem/_version.py")"
if [ -z "$version" ]; then
  echo "build-images.sh: could not read __version__ from llem/_version.py" >&2; exit 1
fi

# Default base image (the backend's official image) and the CUDA major it ships: the defaults of
# the BASE_IMAGE and CUDA_MAJOR build args in docker/<backend>.Dockerfile, the one place they are set.
default_base() {
  local file="$repo/docker/$1.Dockerfile" base cuda
  base=$(sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$file")
  cuda=$(sed -n 's/^ARG CUDA_MAJOR=\(.*\)$/\1/p' "$file")
  if [ -z "$base" ] || [ -z "$cuda" ]; then
    echo "build-images.sh: $file has no ARG BASE_IMAGE=... or ARG CUDA_MAJOR=... default" >&2; exit 1
  fi
  echo "$base $cuda"
}

for b in "${backends[@]}"; do
  defaults=$(default_base "$b") || exit 1
  read -r base cuda <<<"$defaults"
  upper="$(echo "$b" | tr '[:lower:]' '[:upper:]')"
  base_var="${upper}_BASE_IMAGE"; cuda_var="${upper}_CUDA_MAJOR"
  base="${!base_var:-$base}"; cuda="${!cuda_var:-$cuda}"
  if ! [[ "$cuda" =~ ^[0-9]+$ ]]; then
    echo "build-images.sh: $cuda_var=$cuda is not allowed; allowed: a CUDA major version such as 12" >&2; exit 2
  fi
  tag="llenergymeasure/${b}:${version}-cuda${cuda}"
  # shellcheck disable=SC2206
  cmd=(docker build -f "$repo/docker/${b}.Dockerfile"
       --build-arg "BASE_IMAGE=$base" --build-arg "LLEM_VERSION=$version" --build-arg "CUDA_MAJOR=$cuda"
       ${DOCKER_BUILD_ARGS:-} -t "$tag" "$repo")
  echo "+ ${cmd[*]}"
  if [ "$dry_run" -eq 0 ]; then
    DOCKER_BUILDKIT=1 "${cmd[@]}"
  fi
  echo "$tag"
done
