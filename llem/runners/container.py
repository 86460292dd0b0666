"""The container runner: each job in its own ephemeral container of the backend's llem image.

One ``docker run --rm`` per job, with

- only the job's GPUs, by UUID (``--gpus '"device=GPU-a,GPU-b"'``, and the same UUIDs in
  ``CUDA_VISIBLE_DEVICES`` so ``cuda:<k>`` and the meters see the GPUs in the host's order);
- a shared-memory size per backend (``SHM_SIZE``: vLLM and TensorRT-LLM need at least 8g);
- the study directory (the job directory's parent) mounted at the same path, so every path in
  the config and the result means the same inside and outside; model and dataset files read-only;
- ``--user <uid>:<gid>`` of whoever runs the study, so the results belong to them;
- the container's stdout and stderr captured into ``<job dir>/container.log``.

Inside, the image's entrypoint is ``python3 -m llem.runners.worker`` (the same worker the venv
runner uses): it runs the harness and always writes a result, a failed one on error. A container
that exits without a result (killed, out of memory, image broken) raises ``ContainerJobFailed``,
which ``llem.runners.jobs`` records as a failed ``result.json`` like any other job failure.

Images are named ``llenergymeasure/<backend>:<llem version>-cuda<CUDA major>``
(``scripts/build-images.sh`` builds them); ``LLEM_IMAGE_<BACKEND>`` names another image.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Optional

from llem._version import __version__
from llem.runners.base import Runner

IMAGE_REPOSITORY = "llenergymeasure"
#: CUDA majors of the images llem looks for, newest first (only those the host driver supports)
CUDA_MAJORS = (13, 12)
#: ``--shm-size`` per backend. vLLM and TensorRT-LLM move tensors between processes through
#: /dev/shm, whose Docker default (64m) breaks them: at least 8g.
SHM_SIZE = {"pytorch": "2g", "vllm": "8g", "tensorrt": "8g"}
#: extra ``docker run`` flags per backend (TensorRT-LLM's documented container settings)
EXTRA_RUN_FLAGS = {"tensorrt": ["--ulimit", "memlock=-1", "--ulimit", "stack=67108864"]}
#: host variables handed to the container by name (``-e NAME``: values never appear in the command)
FORWARDED_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_DATASETS_OFFLINE", "LLEM_LOG_LEVEL")
CONTAINER_LOG = "container.log"
CONTAINER_CONFIG = ".container_config.json"
CONTAINER_RESULT = ".container_result.json"


class ContainerJobFailed(RuntimeError):
    """The container ended without a result (it could not start, was killed, or crashed)."""


def image_name(backend: str, cuda_major: int, version: str = __version__) -> str:
    """``llenergymeasure/<backend>:<llem version>-cuda<major>``, as scripts/build-images.sh tags it."""
    return f"{IMAGE_REPOSITORY}/{backend}:{version}-cuda{int(cuda_major)}"


def host_cuda_major() -> Optional[int]:
    """The newest CUDA major the host driver supports (NVML), or None when NVML is not readable."""
    try:
        from llem.devices.nvml import nvml_module

        nv = nvml_module()
        nv.nvmlInit()
        return int(nv.nvmlSystemGetCudaDriverVersion()) // 1000
    except Exception:
        return None


def _docker() -> Optional[str]:
    return shutil.which("docker")


def find_image(backend: str) -> tuple[Optional[str], str]:
    """The image a container job of ``backend`` would run, or ``(None, why not)``.

    ``LLEM_IMAGE_<BACKEND>`` names one explicitly; otherwise llem's own images are tried from
    the newest CUDA major the host driver supports down. Presence is checked with
    ``docker image inspect`` (local images only: llem never pulls).
    """
    docker = _docker()
    if docker is None:
        return None, "the `docker` command is not on PATH"
    explicit = os.environ.get(f"LLEM_IMAGE_{backend.upper()}")
    if explicit:
        candidates = [explicit]
    else:
        host = host_cuda_major()
        majors = [m for m in CUDA_MAJORS if host is None or m <= host]
        candidates = [image_name(backend, m) for m in majors]
    errors = []
    for name in candidates:
        try:
            p = subprocess.run([docker, "image", "inspect", "--format", "{{.Id}}", name],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"`docker image inspect` failed: {err}"
        if p.returncode == 0:
            return name, ""
        first = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[0]
        errors.append(first)
        if "Cannot connect to the Docker daemon" in first or "permission denied" in first.lower():
            return None, f"the Docker engine is not reachable: {first}"
    return None, (f"no local image {' or '.join(candidates)} ({errors[-1] if errors else 'not found'}); "
                  f"build it with scripts/build-images.sh {backend}")


def image_available(backend: str) -> bool:
    """Whether a container job of ``backend`` can start here (client present, image local)."""
    return find_image(backend)[0] is not None


def _job_gpus(config) -> tuple[list[str], Optional[str]]:
    """UUIDs of the GPUs the job may use, in CUDA order (the host's ``CUDA_VISIBLE_DEVICES``),
    and why there are none. ``device=cpu`` gets no GPU."""
    if config.device == "cpu":
        return [], "device=cpu"
    from llem.devices import resolve_devices

    devs = resolve_devices()
    return [g.uuid for g in devs], devs.unavailable_reason


class ContainerRunner(Runner):
    name = "container"

    def __init__(self, backend: Optional[str] = None, *, image: Optional[str] = None,
                 shm_size: Optional[str] = None) -> None:
        self.backend = backend
        self._image = image
        self._why = ""
        self.shm_size = shm_size

    # --- availability ------------------------------------------------------------------
    def image(self, backend: Optional[str] = None) -> Optional[str]:
        if self._image is None:
            self._image, self._why = find_image(backend or self.backend or "pytorch")
        return self._image

    def available(self) -> bool:
        return self.image() is not None

    def check(self) -> None:
        if self.image() is None:
            from llem.errors import BackendUnavailableError

            raise BackendUnavailableError(
                f"runner.{self.backend or '<backend>'}=container cannot start: {self._why}")

    def describe(self) -> dict:
        return {"name": self.name, "image": self._image}

    # --- the command ---------------------------------------------------------------------
    def docker_command(self, config, job_dir: Path, cfg_path: Path, out_path: Path,
                       container_name: str) -> list[str]:
        """The full ``docker run`` command for one job (pure apart from reading the GPUs)."""
        backend = config.backend
        image = self.image(backend)
        job_dir = Path(job_dir).resolve()
        study_dir = job_dir.parent
        cmd = [_docker() or "docker", "run", "--rm", "--init", "--name", container_name,
               "--label", f"io.llenergymeasure.job_dir={job_dir}",
               "--user", f"{os.getuid()}:{os.getgid()}",
               "--shm-size", self.shm_size or SHM_SIZE[backend]]
        cmd += EXTRA_RUN_FLAGS.get(backend, [])
        uuids, why = _job_gpus(config)
        if uuids:
            # Quoted: Docker parses --gpus as CSV, so a bare comma would split the device list.
            cmd += ["--gpus", '"device=' + ",".join(uuids) + '"',
                    "-e", "CUDA_VISIBLE_DEVICES=" + ",".join(uuids)]
        elif config.device.startswith("cuda"):
            raise ContainerJobFailed(f"device={config.device} but no GPU is visible to this job: {why}")
        cmd += ["-v", f"{study_dir}:{study_dir}"]
        for p in self._read_only_paths(config):
            cmd += ["-v", f"{p}:{p}:ro"]
        cmd += ["-e", "HOME=/tmp"]
        if config.model.source == "hub":
            hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").resolve()
            hf_home.mkdir(parents=True, exist_ok=True)
            cmd += ["-v", f"{hf_home}:{hf_home}", "-e", f"HF_HOME={hf_home}"]
        for name in FORWARDED_ENV:
            if name in os.environ:
                cmd += ["-e", name]
        cmd += ["-w", str(job_dir), image,
                "--config", str(cfg_path), "--job-dir", str(job_dir), "--out", str(out_path)]
        return cmd

    @staticmethod
    def _read_only_paths(config) -> list[Path]:
        paths = []
        m = config.model
        if m.source in ("local", "gguf") and m.path:
            paths.append(Path(m.path).expanduser().resolve())
        if m.tokenizer and m.tokenizer != "builtin" and Path(m.tokenizer).expanduser().exists():
            paths.append(Path(m.tokenizer).expanduser().resolve())
        d = config.dataset
        if d.kind == "jsonl" and d.path:
            paths.append(Path(d.path).expanduser().resolve())
        return paths

    # --- running -------------------------------------------------------------------------
    def run(self, config, job_dir, *, progress=None):
        from llem.result import ExperimentResult

        if job_dir is None:
            raise ContainerJobFailed("the container runner needs a job directory to mount")
        self.check()
        job_dir = Path(job_dir).resolve()
        job_dir.mkdir(parents=True, exist_ok=True)
        cfg_path, out_path, log_path = job_dir / CONTAINER_CONFIG, job_dir / CONTAINER_RESULT, job_dir / CONTAINER_LOG
        name = f"llem-{config.backend}-{uuid.uuid4().hex[:12]}"
        cmd = self.docker_command(config, job_dir, cfg_path, out_path, name)
        out_path.unlink(missing_ok=True)  # never read back a stale result
        cfg_path.write_text(config.model_dump_json())
        if progress:
            progress(f"running in container {self._image} (log: {log_path})")
        with open(log_path, "ab") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            try:
                rc = proc.wait()
            except BaseException:
                # Interrupted: never leave a container running on the GPU.
                subprocess.run([cmd[0], "kill", name], capture_output=True, timeout=60)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise
            log.write(f"[llem] container exited with code {rc}\n".encode())
        info = {"name": self.name, "image": self._image, "container_name": name, "exit_code": rc,
                "log": str(log_path), "docker_command": cmd}
        try:
            if out_path.is_file():
                result = ExperimentResult.load(out_path)
                inner = result.extra.get("runner")
                result.extra["runner"] = dict(info, inside=inner) if inner else info
                if rc != 0 and result.status == "completed":
                    result.warnings.append(f"the container exited with code {rc} after writing its result")
                return result
            raise ContainerJobFailed(f"the container of image {self._image} exited with code {rc} "
                                     f"({_explain(rc)}) without writing a result; "
                                     f"see {log_path}: {_tail(log_path)}")
        finally:
            out_path.unlink(missing_ok=True)
            cfg_path.unlink(missing_ok=True)


def _explain(rc: int) -> str:
    if rc == 125:
        return "docker could not start the container"
    if rc in (126, 127):
        return "the image's entrypoint could not run"
    if rc > 128 and rc - 128 in signal.Signals._value2member_map_:
        sig = signal.Signals(rc - 128).name
        return f"killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
    if rc < 0 and -rc in signal.Signals._value2member_map_:
        return f"the docker client was killed by {signal.Signals(-rc).name}"
    return "the job crashed"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])[:1500]


__all__ = ["CONTAINER_LOG", "ContainerJobFailed", "ContainerRunner", "SHM_SIZE", "find_image",
           "image_available", "image_name"]
