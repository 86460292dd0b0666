"""The wheel carries the config tree, and an installed (non-editable) llem runs from it."""
from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    wheels = list(out.glob("llenergymeasure-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_carries_yaml_and_plugins(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("llem/conf/config.yaml", "llem/conf/backend/pytorch.yaml", "llem/conf/backend/vllm.yaml",
              "llem/conf/model/tiny.yaml", "llem/conf/model/llama-3.2-1b.yaml", "llem/conf/energy/auto.yaml",
              "llem/conf/precision/bf16.yaml", "llem/conf/dataset/synthetic.yaml",
              "llem/models/architectures/llama-3.1-8b.json", "llem/assets/tokenizer/tokenizer.json",
              "llem/datasets/builtin_prompts.txt", "hydra_plugins/llem_plugins/config.py",
              "llem/conf/quality/none.yaml", "llem/conf/quality/lm_eval.yaml",
              "llem/quality/tasks/llem_easy_mc.yaml", "llem/quality/tasks/llem_easy_mc.jsonl",
              "llem/quality/tasks/llem_easy_gen.yaml", "llem/quality/tasks/llem_easy_gen.jsonl",
              # the protocol's package, and the follower entry `python -m llem.backends.pytorch` runs
              "llem/measure/harness.py", "llem/backends/pytorch/__main__.py", "llem/backends/tensorrt_api.json",
              # the prebuilt leaderboard front end (scripts/build-web.sh): `llem results site` needs no Node.js
              "llem/assets/site/index.html",
              # llem serve: its page and its migrations, read from the package at run time
              "llem/serve/static/index.html", "llem/serve/static/app.js", "llem/serve/static/app.css",
              "llem/serve/migrations/env.py", "llem/serve/migrations/script.py.mako",
              "llem/serve/migrations/versions/0001_initial.py"):
        assert f in names, f
    assert any(n.startswith("llem/assets/site/assets/") and n.endswith(".js") for n in names)
    assert not any("node_modules" in n for n in names)
    assert not any(n.startswith("conf/") for n in names), "conf/ must live inside the llem package"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """The wheel unpacked into a fresh venv (no editable llem on its path): its python and site-packages."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    r = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True)
    target = Path(r.stdout.strip())
    # Dependencies come from the test environment's site-packages; its editable llem does not
    # (a path in a .pth file is added without processing that directory's own .pth files).
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    with zipfile.ZipFile(wheel) as z:  # a wheel is installed by unpacking it (no network, no pip)
        z.extractall(target)
    return py, target


def test_installed_wheel_runs_cfg_job(installed, tmp_path):
    py, target = installed
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(py), "-c", "from llem.config.compose import conf_dir; print(conf_dir())"],
                       cwd=work, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == target / "llem" / "conf"
    r = subprocess.run([str(py), "-m", "llem", "run", "--cfg", "job", "batch=4"], cwd=work,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "batch: 4" in r.stdout and "backend: pytorch" in r.stdout
    assert list(work.iterdir()) == []


def test_installed_wheel_builds_a_site_without_node(installed, tmp_path):
    from tests.results.results_fixtures import write_real_job

    job = write_real_job(tmp_path / "jobs")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = "/usr/bin/nonexistent"  # no node, no npm: the installed package alone
    py, target = installed
    r = subprocess.run([str(py), "-m", "llem", "results", "site", str(job), "--out", str(tmp_path / "site"), "-q"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    site = tmp_path / "site"
    assert (site / "index.html").read_text() == (target / "llem" / "assets" / "site" / "index.html").read_text()
    assert (site / "data" / "index.json").is_file() and list((site / "assets").glob("*.js"))
