# llem image for the TensorRT-LLM backend: the backend's official image with llem installed.
# Build with scripts/build-images.sh, which tags it llenergymeasure/tensorrt:<llem version>-cuda<major>
# (build context: the repository root; tensorrt.Dockerfile.dockerignore keeps the context small).
# The container runs ONE job: `docker run ... IMAGE --config <config.json> --job-dir <job dir> --out <result.json>`
# (llem's container runner writes that command; see docs/docker.md).
ARG BASE_IMAGE=nvcr.io/nvidia/tensorrt-llm/release:1.0.0
FROM ${BASE_IMAGE}

ARG LLEM_VERSION=unknown
# the CUDA major the base image ships (it goes into the image tag); change it with the base image
ARG CUDA_MAJOR=12
LABEL org.opencontainers.image.title="llem (tensorrt backend)" \
      org.opencontainers.image.version="${LLEM_VERSION}" \
      io.llenergymeasure.backend="tensorrt" \
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
    && python3 -m pip show tensorrt_llm >/dev/null && python3 -c "import llem; print(llem.__version__)"

WORKDIR /tmp
ENTRYPOINT ["python3", "-m", "llem.runners.worker"]
