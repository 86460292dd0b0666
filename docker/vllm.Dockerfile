# llem image for the vLLM backend: the backend's official image with llem installed.
# Build with scripts/build-images.sh, which tags it llenergymeasure/vllm:<llem version>-cuda<major>
# (build context: the repository root; vllm.Dockerfile.dockerignore keeps the context small).
# The container runs ONE job: `docker run ... IMAGE --config <config.json> --job-dir <job dir> --out <result.json>`
# (llem's container runner writes that command; see docs/docker.md).
# The base image's vLLM must lie in pyproject.toml's `vllm` range; 0.26.0 is the version validated on
# an H100 (docs/validation/). scripts/build-images.sh and scripts/setup-vllm-env.sh --gpu read
# this line, so it is the one place that version is set (tests/docker checks docs and pyproject).
ARG BASE_IMAGE=vllm/vllm-openai:v0.26.0
FROM ${BASE_IMAGE}

ARG LLEM_VERSION=unknown
# the CUDA major the base image ships (it goes into the image tag); change it with the base image
ARG CUDA_MAJOR=12
LABEL org.opencontainers.image.title="llem (vllm backend)" \
      org.opencontainers.image.version="${LLEM_VERSION}" \
      io.llenergymeasure.backend="vllm" \
      io.llenergymeasure.cuda_major="${CUDA_MAJOR}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# HOME=/tmp: jobs run as the invoking user's uid (`--user uid:gid`), which has no home in the image.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp

WORKDIR /opt/llem-src
COPY pyproject.toml README.md ./
COPY llem ./llem
COPY conf ./conf
COPY hydra_plugins ./hydra_plugins
# Every package the base image ships is pinned as a constraint, so installing llem can never
# replace the backend's own build (torch, vllm, tensorrt_llm, CUDA wheels): a conflict fails the build.
RUN python3 -m pip list --format=freeze > /tmp/base-image-constraints.txt \
    && python3 -m pip install --no-cache-dir -c /tmp/base-image-constraints.txt "." \
    && python3 -m pip show vllm >/dev/null && python3 -c "import llem; print(llem.__version__)"

WORKDIR /tmp
ENTRYPOINT ["python3", "-m", "llem.runners.worker"]
