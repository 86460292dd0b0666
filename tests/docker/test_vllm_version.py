"""One vLLM version for the GPU: docker/vllm.Dockerfile's BASE_IMAGE default. Everything else
(the build script, setup-vllm-env.sh --gpu, the docs) agrees with it, and it lies in the vLLM
range pyproject.toml accepts."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
#: the version validated on an H100 (docs/validation/)
VALIDATED = "0.26.0"


def dockerfile_version() -> str:
    text = (REPO / "docker" / "vllm.Dockerfile").read_text()
    return re.search(r"^ARG BASE_IMAGE=vllm/vllm-openai:v([\d.]+)$", text, re.M).group(1)


def pyproject_range() -> SpecifierSet:
    text = (REPO / "pyproject.toml").read_text()
    return SpecifierSet(re.search(r'^vllm = \["vllm([^"]+)"\]$', text, re.M).group(1))


def test_the_image_version_is_accepted_by_pyproject_and_is_the_validated_one():
    v = dockerfile_version()
    assert Version(v) in pyproject_range(), (v, str(pyproject_range()))
    assert v == VALIDATED


def test_docs_quote_the_dockerfile_version():
    v = dockerfile_version()
    docker_md = (REPO / "docs" / "docker.md").read_text()
    images = re.findall(r"`vllm/vllm-openai:v([\d.]+)`", docker_md)
    assert images and set(images) == {v}, images
    vllm_md = (REPO / "docs" / "vllm.md").read_text()
    pins = re.findall(r"setup-vllm-env\.sh --gpu .*vllm==([\d.]+)", vllm_md)
    assert pins and set(pins) == {v}, pins


def test_setup_script_gpu_default_is_read_from_the_dockerfile():
    p = subprocess.run(["bash", str(REPO / "scripts" / "setup-vllm-env.sh"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"--gpu default: vllm=={dockerfile_version()} (docker/vllm.Dockerfile)" in p.stdout


def test_build_script_takes_its_default_from_the_dockerfile(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").symlink_to(REPO / "tests" / "fixtures" / "fake_docker")
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_DOCKER_LOG": str(log)}
    env.pop("VLLM_BASE_IMAGE", None)
    p = subprocess.run([str(REPO / "scripts" / "build-images.sh"), "vllm"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert f"BASE_IMAGE=vllm/vllm-openai:v{dockerfile_version()}" in call["build_args"]
