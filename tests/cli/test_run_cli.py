"""`llem run` as a user types it: the first real run, Hydra flags, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST, run_llem


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_version():
    from llem import __version__

    r = run_llem(["--version"], cwd=".")
    assert r.returncode == 0
    assert r.stdout.strip() == f"llem {__version__}"


def test_default_run_writes_result(tmp_path):
    r = run_llem(["run", *FAST, "hydra.run.dir=out"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    assert res["schema_version"] and res["llem_version"] and res["experiment_id"]
    assert len(res["config_hash"]) == 64
    assert res["backend"] == "pytorch" and res["backend_version"]
    assert res["model"] == "tiny-llama" and res["precision"] == "fp32" and res["batch"] == 1
    # fixed output length: 1 prompt x 4 tokens per generate call, every cycle; 2 calls make a pass
    assert all(c["output_tokens"] == 4 * c["calls"] and c["repeats"] == c["calls"] / 2 for c in res["cycles"])
    assert res["output_tokens"] == sum(c["output_tokens"] for c in res["cycles"])
    assert res["input_tokens"] > 0 and res["duration_s"] > 0 and res["output_tokens_per_s"] > 0
    assert res["config"]["batch"] == 1
    # no meter on this machine: energy is missing with a reason, never 0
    if not res["energy"]["measured"]:
        assert res["energy"]["energy_j"] is None and res["energy"]["not_measured_reason"]
        assert res["energy"]["energy_per_output_token_j"] is None
    assert "== llem:" in r.stdout and "result:" in r.stdout


def test_cfg_job_prints_config_and_writes_nothing(tmp_path):
    r = run_llem(["run", "--cfg", "job", "batch=8", "model=llama-3.2-1b"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "batch: 8" in r.stdout and "name: llama-3.2-1b" in r.stdout
    # the window length for meters without a counter period is a visible, typed setting
    assert "min_window_s: 2.0" in r.stdout
    assert "hydra:" not in r.stdout
    assert _files(tmp_path) == []


def test_hydra_flags_resolve_package_info_add_delete(tmp_path):
    r = run_llem(["run", "--cfg", "job", "--resolve", "-p", "model"], cwd=tmp_path)
    assert r.returncode == 0 and "source: builtin" in r.stdout and "backend:" not in r.stdout
    r = run_llem(["run", "--info", "defaults"], cwd=tmp_path)
    assert r.returncode == 0 and "backend/pytorch" in r.stdout
    r = run_llem(["run", "--cfg", "job", "+pytorch.extra_generate_kwargs.no_repeat_ngram_size=3"], cwd=tmp_path)
    assert r.returncode == 0 and "no_repeat_ngram_size: 3" in r.stdout
    r = run_llem(["run", "--cfg", "job", "~pytorch.extra_load_kwargs"], cwd=tmp_path)
    assert r.returncode == 0 and "extra_load_kwargs" not in r.stdout
    assert _files(tmp_path) == []


def test_config_dir_and_name(tmp_path):
    d = tmp_path / "myconf"
    d.mkdir()
    (d / "exp.yaml").write_text("defaults:\n  - config\n  - override model: llama-3.1-8b\n  - _self_\nbatch: 5\n")
    r = run_llem(["run", "-cd", str(d), "-cn", "exp", "--cfg", "job"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "batch: 5" in r.stdout and "name: llama-3.1-8b" in r.stdout


@pytest.mark.parametrize("override,needles", [
    (["backend=nosuch"], ["backend", "nosuch", "pytorch", "vllm"]),
    (["model=nosuch"], ["model", "nosuch", "tiny"]),
    (["batchsize=4"], ["batchsize", "unknown key"]),
    (["+batchsize=4"], ["batchsize", "unknown key"]),
    (["pytorch.num_beam=2"], ["pytorch.num_beam"]),
    (["batch=abc"], ["batch", "abc", "integer"]),
    (["batch=0"], ["batch", "0", "greater than 0"]),
    (["batch=-3"], ["batch", "-3", "greater than 0"]),
    (["energy=joulemeter"], ["energy", "joulemeter", "nvml", "zeus", "codecarbon"]),
    (["model=local", "model.path=/definitely/not/here"], ["model.path", "/definitely/not/here", "does not exist"]),
    (["precision=fp8"], ["precision", "fp8", "pytorch", "bf16"]),
    (["measurement.cycles=0"], ["measurement.cycles", "0"]),
    (["output_len=ten"], ["output_len", "ten"]),
])
def test_bad_input_exit_2_short_message_nothing_written(tmp_path, override, needles):
    r = run_llem(["run", *override], cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr + r.stdout
    assert len(err.splitlines()) <= 2, err
    for n in needles:
        assert n in err, (n, err)
    assert _files(tmp_path) == [], _files(tmp_path)


def test_bad_config_file_exit_2(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "bad.yaml").write_text("defaults:\n  - config\n  - _self_\nbatch: many\n")
    r = run_llem(["run", "-cd", str(d), "-cn", "bad"], cwd=tmp_path)
    assert r.returncode == 2 and "batch" in r.stderr and "many" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "outputs").exists()


def test_unknown_command_exit_2():
    r = run_llem(["fly"], cwd=".")
    assert r.returncode == 2 and "fly" in r.stderr
