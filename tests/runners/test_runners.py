"""Runner choice (runner.<backend>=local|auto|venv:<path>|container) and its early errors."""
import sys

import pytest

from llem.errors import BackendUnavailableError
from llem.runners import find_venv, resolve_runner
from llem.runners.local import LocalRunner
from llem.runners.venv import VenvRunner


def test_local_for_an_importable_backend():
    assert isinstance(resolve_runner("pytorch", "local"), LocalRunner)
    assert isinstance(resolve_runner("pytorch", "auto"), LocalRunner)


def test_auto_uses_the_env_var_venv(monkeypatch, tmp_path):
    fake = tmp_path / "venv-vllm"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin/python").symlink_to(sys.executable)
    monkeypatch.setenv("LLEM_VENV_VLLM", str(fake))
    from llem.runners import local

    monkeypatch.setattr(local, "importable", lambda b: False)
    r = resolve_runner("vllm", "auto")
    assert isinstance(r, VenvRunner) and r.venv == fake
    assert find_venv("vllm") == fake


def test_auto_finds_dot_venv_in_cwd(monkeypatch, tmp_path):
    from llem.runners import local

    monkeypatch.setattr(local, "importable", lambda b: False)
    monkeypatch.delenv("LLEM_VENV_VLLM", raising=False)
    monkeypatch.chdir(tmp_path)
    import llem.runners as runners

    monkeypatch.setattr(runners, "_repo_root", lambda: None)
    (tmp_path / ".venv-vllm/bin").mkdir(parents=True)
    (tmp_path / ".venv-vllm/bin/python").symlink_to(sys.executable)
    assert isinstance(resolve_runner("vllm", "auto"), VenvRunner)


def test_auto_with_nothing_available_names_what_to_install(monkeypatch, tmp_path):
    from llem.runners import local
    import llem.runners as runners

    monkeypatch.setattr(local, "importable", lambda b: False)
    monkeypatch.setattr(runners, "_repo_root", lambda: None)
    monkeypatch.setattr(runners, "_container_available", lambda b: False)
    monkeypatch.delenv("LLEM_VENV_VLLM", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BackendUnavailableError) as e:
        resolve_runner("vllm", "auto")
    msg = str(e.value)
    assert "backend=vllm cannot run here" in msg and "setup-vllm-env.sh" in msg and "llenergymeasure[vllm]" in msg


def test_missing_venv_path_fails_early(tmp_path):
    with pytest.raises(BackendUnavailableError, match="does not exist"):
        resolve_runner("vllm", f"venv:{tmp_path / 'nope'}")


def test_local_with_a_backend_that_does_not_import(monkeypatch):
    from llem.runners import local

    monkeypatch.setattr(local, "importable", lambda b: False)
    with pytest.raises(BackendUnavailableError, match="runner.tensorrt=local"):
        resolve_runner("tensorrt", "local")


def test_container_dispatches_to_the_container_module(monkeypatch):
    import types

    calls = []

    class FakeContainerRunner(LocalRunner):
        name = "container"

        def __init__(self, backend=None):
            calls.append(backend)

        def check(self):
            pass

    mod = types.ModuleType("llem.runners.container")
    mod.ContainerRunner = FakeContainerRunner
    monkeypatch.setitem(sys.modules, "llem.runners.container", mod)
    assert resolve_runner("vllm", "container").name == "container"
    assert calls == ["vllm"]
