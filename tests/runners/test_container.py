"""The container runner, against a TEST DOUBLE of the `docker` client (tests/fixtures/fake_docker).

No Docker engine runs on these machines. The stand-in checks and records every argument and runs
the image's real ENTRYPOINT (from docker/<backend>.Dockerfile) as a local process with mounts
translated, so everything but the engine is real: llem's runner, the worker, the harness, the
PyTorch backend on a tiny model, result.json and the captured logs.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from llem.config.compose import load_config
from llem.errors import BackendUnavailableError
from llem.result import ExperimentResult
from llem.runners import container, resolve_runner
from llem.runners.jobs import execute_job
from llem.runners.container import (CONTAINER_LOG, SHM_SIZE, ContainerRunner, find_image, image_available,
                                    image_name)

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fixtures" / "fake_docker"
TINY = ["measurement.cycles=2", "measurement.warmup_runs=0", "measurement.min_window_s=0", "dataset.num_prompts=2", "output_len=4",
        "energy.baseline.enabled=false"]
UUIDS = ["GPU-11111111-2222-3333-4444-555555555555", "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
         "GPU-99999999-8888-7777-6666-555555555555"]


class FakeDocker:
    def __init__(self, log: Path) -> None:
        self.log = log

    def calls(self, sub: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in rows if sub is None or r.get("subcommand") == sub]


@pytest.fixture
def fake_docker(tmp_path, monkeypatch) -> FakeDocker:
    """Put the `docker` test double first on PATH, with no image present yet."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "docker").symlink_to(FAKE)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker-calls.jsonl"))
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", "")
    monkeypatch.setenv("FAKE_DOCKER_DOCKERFILES", str(REPO / "docker"))
    monkeypatch.setenv("FAKE_DOCKER_PYTHON", sys.executable)
    for b in ("PYTORCH", "VLLM", "TENSORRT"):
        monkeypatch.delenv(f"LLEM_IMAGE_{b}", raising=False)
    monkeypatch.delenv("LLEM_SIMULATED_NVML", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return FakeDocker(tmp_path / "docker-calls.jsonl")


def _images(monkeypatch, *names):
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", ",".join(names))


def _sim_gpus(tmp_path, monkeypatch, n=3):
    from llem.devices.simulated import write_spec

    spec = write_spec(tmp_path / "nvml.json", [{"uuid": u, "name": "Simulated H100"} for u in UUIDS[:n]],
                      cuda_driver_version=12080)
    monkeypatch.setenv("LLEM_SIMULATED_NVML", str(spec))
    monkeypatch.setenv("FAKE_DOCKER_NVML", str(spec))
    return spec


def test_image_name_matches_the_build_script(fake_docker, tmp_path):
    import subprocess

    from llem._version import __version__

    out = subprocess.run([str(REPO / "scripts/build-images.sh"), "--dry-run", "vllm"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == image_name("vllm", 12) == f"llenergymeasure/vllm:{__version__}-cuda12"


def test_find_image_prefers_the_newest_cuda_the_driver_supports(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("vllm", 12), image_name("vllm", 13))
    monkeypatch.setattr(container, "host_cuda_major", lambda: None)
    assert find_image("vllm") == (image_name("vllm", 13), "")
    monkeypatch.setattr(container, "host_cuda_major", lambda: 12)  # a CUDA 12 driver cannot run cuda13 images
    assert find_image("vllm") == (image_name("vllm", 12), "")
    inspected = [c["images"] for c in fake_docker.calls("image inspect")]
    assert inspected[-1] == [image_name("vllm", 12)]


def test_host_cuda_major_reads_the_driver(fake_docker, tmp_path, monkeypatch):
    _sim_gpus(tmp_path, monkeypatch)
    assert container.host_cuda_major() == 12


def test_missing_image_client_or_daemon_says_why(fake_docker, monkeypatch, tmp_path):
    name, why = find_image("tensorrt")
    assert name is None and "build it with scripts/build-images.sh tensorrt" in why
    assert not image_available("tensorrt")
    monkeypatch.setenv("FAKE_DOCKER_DAEMON_DOWN", "1")
    assert "Docker engine is not reachable" in find_image("tensorrt")[1]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_image("tensorrt") == (None, "the `docker` command is not on PATH")


def test_explicit_image_via_env(fake_docker, monkeypatch):
    _images(monkeypatch, "my/trt:custom")
    monkeypatch.setenv("LLEM_IMAGE_TENSORRT", "my/trt:custom")
    assert find_image("tensorrt") == ("my/trt:custom", "")


def test_auto_picks_the_container_where_the_backend_is_not_installed(fake_docker, monkeypatch, tmp_path):
    """A multi-backend study: pytorch runs locally, vllm (not installed, no venv) in its image."""
    from llem.runners import local
    import llem.runners as runners

    real = local.importable
    monkeypatch.setattr(local, "importable", lambda b: b == "pytorch" and real(b))
    monkeypatch.setattr(runners, "find_venv", lambda b: None)
    _images(monkeypatch, image_name("vllm", 12))
    assert resolve_runner("pytorch", "auto").name == "local"
    r = resolve_runner("vllm", "auto")
    assert isinstance(r, ContainerRunner) and r.describe()["image"] == image_name("vllm", 12)
    # neither installed nor an image: refused before any job starts
    with pytest.raises(BackendUnavailableError, match="backend=tensorrt cannot run here"):
        resolve_runner("tensorrt", "auto")
    with pytest.raises(BackendUnavailableError, match="runner.tensorrt=container cannot start: no local image"):
        resolve_runner("tensorrt", "container")
    assert not fake_docker.calls("run")


def test_a_tiny_experiment_runs_through_the_container(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("pytorch", 13), image_name("pytorch", 12))
    monkeypatch.setattr(container, "host_cuda_major", lambda: 12)
    # no meter on this CPU machine: the GPU test below measures (simulated) energy in the container
    cfg = load_config(["runner.pytorch=container", "device=cpu", "energy.meter=none", *TINY])
    job_dir = tmp_path / "study" / "job-0"
    result = execute_job(cfg, job_dir)

    assert result.status == "completed", result.error_message
    on_disk = ExperimentResult.load(job_dir / "result.json")
    assert on_disk.status == "completed" and on_disk.output_tokens == result.output_tokens > 0
    assert on_disk.config_hash == cfg.config_hash
    assert (job_dir / "result.json").stat().st_uid == os.getuid()
    runner = on_disk.extra["runner"]
    assert runner["name"] == "container" and runner["image"] == image_name("pytorch", 12)
    assert runner["exit_code"] == 0 and runner["inside"]["name"] == "venv"  # the worker ran inside
    log = (job_dir / CONTAINER_LOG).read_text()
    assert "docker run --rm" in log and "loading tiny-llama" in log and "exited with code 0" in log
    # the scratch files of the hand-over are gone
    assert sorted(p.name for p in job_dir.iterdir() if p.name.startswith(".")) == []

    (run,) = fake_docker.calls("run")
    o = run["options"]
    assert "--rm" in o["flags"] and o["user"] == f"{os.getuid()}:{os.getgid()}"
    assert o["shm-size"] == SHM_SIZE["pytorch"] and "gpus" not in o  # device=cpu: no GPU at all
    study = str((tmp_path / "study").resolve())
    assert f"{study}:{study}" in o["volumes"] and o["workdir"] == str(job_dir.resolve())
    assert run["host_command"][:3] == [sys.executable, "-m", "llem.runners.worker"]  # the Dockerfile's ENTRYPOINT
    assert "HOME" in run["env_names"]


def test_only_the_jobs_gpus_by_uuid_and_vllm_shm(fake_docker, monkeypatch, tmp_path):
    """The docker command for a vLLM job on GPUs 2,0 of three: those UUIDs, in that order, 8g shm."""
    _sim_gpus(tmp_path, monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    _images(monkeypatch, image_name("vllm", 12))
    cfg = load_config(["backend=vllm", "device=cuda:1", *TINY])
    r = ContainerRunner("vllm")
    cmd = r.docker_command(cfg, tmp_path / "s" / "j", tmp_path / "c.json", tmp_path / "o.json", "llem-x")
    gpus = cmd[cmd.index("--gpus") + 1]
    assert gpus == f'"device={UUIDS[2]},{UUIDS[0]}"'
    assert f"CUDA_VISIBLE_DEVICES={UUIDS[2]},{UUIDS[0]}" in cmd
    assert cmd[cmd.index("--shm-size") + 1] == "8g"
    assert SHM_SIZE["vllm"] == "8g" and SHM_SIZE["tensorrt"] == "8g"


def test_tensorrt_gets_its_ulimits_and_shm(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("tensorrt", 12))
    cfg = load_config(["backend=tensorrt", "precision=bf16", "device=auto", *TINY])
    cmd = ContainerRunner("tensorrt").docker_command(cfg, tmp_path / "s" / "j", tmp_path / "c", tmp_path / "o", "n")
    assert cmd[cmd.index("--shm-size") + 1] == "8g"
    assert "memlock=-1" in cmd and "stack=67108864" in cmd
    assert "--gpus" not in cmd  # no GPU on this machine and device=auto: the job sees none


def test_gpu_job_through_the_fake_engine_sees_only_its_gpus(fake_docker, monkeypatch, tmp_path):
    """With a simulated host of three GPUs the stand-in engine exposes only the --gpus devices to the
    job (as the NVIDIA runtime would); the job's environment snapshot must list exactly those."""
    _sim_gpus(tmp_path, monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUIDS[1])
    _images(monkeypatch, image_name("pytorch", 12))
    # a coarse quantisation target keeps the simulated counter's window short
    cfg = load_config(["runner.pytorch=container", "device=auto", "measurement.quantisation_target=0.5", *TINY])
    result = execute_job(cfg, tmp_path / "study" / "job-gpu")
    assert result.status == "completed", result.error_message
    (run,) = fake_docker.calls("run")
    assert run["gpus"] == [UUIDS[1]] and "LLEM_SIMULATED_NVML" in run["env_names"]
    seen = json.dumps(result.environment)
    assert UUIDS[1] in seen and UUIDS[0] not in seen and UUIDS[2] not in seen
    # and the meter inside counted that GPU's energy, and only that GPU's
    assert [d.uuid for d in result.energy.per_device] == [UUIDS[1]] and result.energy.measured


def test_a_job_that_fails_inside_the_container_keeps_its_error(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("pytorch", 12))
    monkeypatch.setattr(container, "host_cuda_major", lambda: 12)
    # int8 with device=auto on a machine without CUDA: the backend refuses at load, inside the container
    cfg = load_config(["runner.pytorch=container", "device=auto", "precision=int8", *TINY])
    job_dir = tmp_path / "study" / "job-bad"
    result = execute_job(cfg, job_dir, raise_errors=False)
    on_disk = ExperimentResult.load(job_dir / "result.json")
    assert result.status == on_disk.status == "failed"
    assert on_disk.error_type == "ConfigError" and "precision=int8" in on_disk.error_message
    assert on_disk.extra["runner"]["exit_code"] == 1
    assert "precision=int8" in (job_dir / CONTAINER_LOG).read_text()


def test_a_killed_container_is_recorded_as_failed(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("pytorch", 12))
    monkeypatch.setattr(container, "host_cuda_major", lambda: 12)
    monkeypatch.setenv("FAKE_DOCKER_KILL", "1")
    cfg = load_config(["runner.pytorch=container", "device=cpu", *TINY])
    job_dir = tmp_path / "study" / "job-oom"
    result = execute_job(cfg, job_dir, raise_errors=False)
    on_disk = ExperimentResult.load(job_dir / "result.json")
    assert result.status == on_disk.status == "failed" and on_disk.error_type == "ContainerJobFailed"
    assert "exited with code 137" in on_disk.error_message and "SIGKILL" in on_disk.error_message
    assert "Killed" in (job_dir / CONTAINER_LOG).read_text()


def test_a_stale_result_is_never_read_back(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("pytorch", 12))
    monkeypatch.setattr(container, "host_cuda_major", lambda: 12)
    monkeypatch.setenv("FAKE_DOCKER_KILL", "1")
    cfg = load_config(["runner.pytorch=container", "device=cpu", *TINY])
    job_dir = tmp_path / "study" / "job-stale"
    job_dir.mkdir(parents=True)
    (job_dir / container.CONTAINER_RESULT).write_text("{}")
    with pytest.raises(container.ContainerJobFailed):
        ContainerRunner("pytorch").run(cfg, job_dir)


def test_local_model_and_dataset_are_mounted_read_only(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("pytorch", 12))
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"text": "hello"}\n')
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # validation asks for a config and weights
    (model / "model.safetensors").write_bytes(b"")
    cfg = load_config(["device=cpu", "dataset=jsonl", f"dataset.path={data}", "model=local",
                       f"model.path={model}", *TINY])
    cmd = ContainerRunner("pytorch").docker_command(cfg, tmp_path / "s" / "j", tmp_path / "c", tmp_path / "o", "n")
    vols = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-v"]
    assert f"{data}:{data}:ro" in vols and f"{model}:{model}:ro" in vols


def test_forwarded_env_is_passed_by_name_only(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("pytorch", 12))
    monkeypatch.setenv("HF_TOKEN", "secret-value")
    cfg = load_config(["device=cpu", *TINY])
    cmd = ContainerRunner("pytorch").docker_command(cfg, tmp_path / "s" / "j", tmp_path / "c", tmp_path / "o", "n")
    assert "HF_TOKEN" in cmd and not any("secret-value" in a for a in cmd)


def test_the_fake_engine_rejects_an_unquoted_gpu_list(fake_docker, monkeypatch, tmp_path):
    """Guards the stand-in itself: Docker's CSV parsing of --gpus splits a bare device list."""
    import subprocess

    _images(monkeypatch, "llenergymeasure/pytorch:x")
    p = subprocess.run(["docker", "run", "--rm", "--gpus", f"device={UUIDS[0]},{UUIDS[1]}",
                        "llenergymeasure/pytorch:x"], capture_output=True, text=True)
    assert p.returncode == 125 and "--gpus" in p.stderr
    p = subprocess.run(["docker", "run", "--rm", "--bogus", "llenergymeasure/pytorch:x"], capture_output=True, text=True)
    assert p.returncode == 125 and "unknown flag: --bogus" in p.stderr


def test_a_cuda_job_with_no_gpu_visible_fails_before_docker_runs(fake_docker, monkeypatch, tmp_path):
    _images(monkeypatch, image_name("vllm", 12))
    cfg = load_config(["backend=vllm", "device=cuda", *TINY])
    result = execute_job(cfg.model_copy(update={"runner": cfg.runner.model_copy(update={"vllm": "container"})}),
                         tmp_path / "s" / "j", raise_errors=False)
    assert result.status == "failed" and result.error_type == "ContainerJobFailed"
    assert "device=cuda but no GPU is visible" in result.error_message
    assert not fake_docker.calls("run")
    assert not (tmp_path / "s" / "j" / container.CONTAINER_CONFIG).exists()


def test_a_multi_backend_study_sends_the_missing_backend_to_its_container(fake_docker, monkeypatch, tmp_path):
    """`llem run -m backend=pytorch,tensorrt`: pytorch runs here, tensorrt (not installed) goes to its
    image. In the stand-in "image" tensorrt_llm is missing too, so that job fails inside the
    container and is recorded as failed, beside the completed one. Without the image the study is
    refused before any job starts."""
    import subprocess

    args = [sys.executable, "-m", "llem", "run", "-m", "backend=pytorch,tensorrt", "precision=bf16",
            "energy.meter=none", *TINY]
    p = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "backend=tensorrt cannot run here" in p.stderr
    assert not (tmp_path / "multirun").exists() and not fake_docker.calls("run")

    _images(monkeypatch, image_name("tensorrt", 12))
    p = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    (study,) = [d for d in (tmp_path / "multirun").glob("*/*") if d.is_dir()]
    local = ExperimentResult.load(study / "0000" / "result.json")
    inside = ExperimentResult.load(study / "0001" / "result.json")
    assert local.backend == "pytorch" and local.status == "completed"
    assert local.extra.get("runner", {}).get("name", "local") == "local"
    assert inside.backend == "tensorrt" and inside.status == "failed"
    assert inside.extra["runner"]["name"] == "container" and inside.extra["runner"]["image"] == image_name("tensorrt", 12)
    assert inside.error_type == "BackendUnavailableError" and "tensorrt_llm is not importable" in inside.error_message
    assert (study / "0001" / CONTAINER_LOG).is_file() and not (study / "0000" / CONTAINER_LOG).exists()
    (run,) = fake_docker.calls("run")
    assert run["options"]["shm-size"] == "8g" and "memlock=-1" in run["options"]["ulimits"]
