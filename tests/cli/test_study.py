"""``llem run -m`` before any job runs: bad input exits 2 and writes nothing; the dry run."""
import json

import pytest

from tests.study.conftest import TINY, run_llem


def _nothing_written(d):
    return [p for p in d.rglob("*")] == []


def test_one_bad_grid_point_exits_2_and_writes_nothing(workdir):
    r = run_llem("-m", "batch=1,2,0", *TINY, cwd=workdir)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "job 2 (batch=0" in lines[0] and "batch=0" in lines[0] and "greater than 0" in lines[0]
    assert _nothing_written(workdir)


def test_bad_execution_option_exits_2(workdir):
    r = run_llem("-m", "batch=1,2", "hydra.sweeper.order=random", cwd=workdir)
    assert r.returncode == 2 and "hydra.sweeper.order='random'" in r.stderr and "shuffled" in r.stderr
    assert _nothing_written(workdir)


def test_backend_that_cannot_run_fails_before_any_job(workdir, tmp_path):
    r = run_llem("-m", "batch=1,2", "backend=pytorch,vllm", "precision=fp16", f"runner.vllm=venv:{tmp_path}/none",
                 cwd=workdir)
    assert r.returncode == 2 and "runner.vllm=venv:" in r.stderr and "does not exist" in r.stderr
    assert not (workdir / "multirun").exists()


def test_dry_run_prints_every_job_and_writes_nothing(workdir):
    # how fast a dry run is: benchmarks/dryrun_speed.py (no test times it)
    r = run_llem("-m", "batch=1,8", "model=tiny,llama-3.1-8b", "precision=bf16", "hydra.sweeper.grid_cycles=2",
                 "--dry-run", cwd=workdir)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "8 jobs (4 grid points x 2 grid cycles" in out
    rows = [l for l in out.splitlines() if l[:4].isdigit()]
    assert len(rows) == 8
    assert rows[0].startswith("0000_c0") and "tiny-llama" in rows[0]
    big = [l for l in rows if "llama-3.1-8b" in l and "batch=8" in l][0]
    assert "pytorch" in big and "bf16" in big and " 8 " in big
    gib = float(big.split("bf16")[1].split()[1])
    # 8.03e9 x 2 bytes (14.96 GiB) + the larger of the load's embedding (0.98 GiB) and a small KV
    # cache, + 1.3 GiB of CUDA context and allocator cache
    assert 16.5 < gib < 17.5
    assert "no GPU" in big
    assert _nothing_written(workdir)


def test_dry_run_of_a_grid_of_two_backends_with_a_vllm_key(workdir):
    r = run_llem("-m", "backend=vllm,pytorch", "batch=1,8", "vllm.enforce_eager=true", "--dry-run", cwd=workdir)
    assert r.returncode == 0, r.stderr
    rows = {l.split()[0]: l for l in r.stdout.splitlines() if l[:4].isdigit()}
    assert sorted(rows) == ["0000", "0001", "0002", "0003"]
    vllm = [l for l in rows.values() if " vllm " in l]
    torch = [l for l in rows.values() if " pytorch " in l]
    assert len(vllm) == len(torch) == 2
    assert all("vllm.enforce_eager=true" in l for l in vllm) and not any("enforce_eager" in l for l in torch)
    assert "vllm.enforce_eager=true: backend=vllm only, in 2 grid points; left out of 2 (pytorch)" in r.stdout
    assert _nothing_written(workdir)


def test_hydra_gets_no_section_its_primary_config_lacks():
    # Hydra composes its primary config (default backend: pytorch) with every override that is not
    # a sweep before llem's sweeper runs the plan: `vllm.enforce_eager=true` would fail there
    from hydra.types import RunMode

    from llem.cli.study import without_left_out_sections
    from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer

    args = ["backend=vllm,pytorch", "batch=1,8", "vllm.enforce_eager=true", "output_len=4"]
    with standalone_composer() as c:
        plan = plan_grid(args, c, ExecutionOptions())
        given = without_left_out_sections(["-m", *args, "--quiet"], args, plan)
        assert given == ["-m", "backend=vllm,pytorch", "batch=1,8", "output_len=4", "--quiet"]
        c.loader.load_configuration("config", given[1:-1], run_mode=RunMode.MULTIRUN, from_shell=False)
        with pytest.raises(Exception, match="vllm.enforce_eager"):
            c.loader.load_configuration("config", args, run_mode=RunMode.MULTIRUN, from_shell=False)
        # a grid whose every job takes the key hands it to Hydra as before
        one = ["backend=vllm", "batch=1,8", "vllm.enforce_eager=true"]
        assert without_left_out_sections(one, one, plan_grid(one, c, ExecutionOptions())) == one


def test_existing_study_dir_is_not_overwritten(workdir):
    d = workdir / "s"
    d.mkdir()
    (d / "manifest.json").write_text("{}")
    r = run_llem("-m", "batch=1,2", f"hydra.sweep.dir={d}", cwd=workdir)
    assert r.returncode == 2 and "already holds a study" in r.stderr and "--resume" in r.stderr
    assert (d / "manifest.json").read_text() == "{}"


def test_resume_of_a_directory_without_manifest(workdir):
    r = run_llem("--resume", str(workdir), cwd=workdir)
    assert r.returncode == 2 and "no manifest.json" in r.stderr


def test_dry_run_checks_fit_against_the_gpus_found(workdir, tmp_path):
    # two simulated 24 GiB GPUs (LLEM_SIMULATED_NVML is llem's NVML test double)
    spec = tmp_path / "nvml.json"
    spec.write_text(json.dumps({"gpus": [{"uuid": "GPU-aaaa", "name": "Sim 24G", "memory_total_mib": 24576},
                                         {"uuid": "GPU-bbbb", "name": "Sim 24G", "memory_total_mib": 24576}]}))
    r = run_llem("-m", "model=llama-3.1-8b", "precision=bf16,fp32", "--dry-run", cwd=workdir,
                 env={"LLEM_SIMULATED_NVML": str(spec)})
    assert r.returncode == 0, r.stderr
    assert "GPUs: 24 GiB, 24 GiB" in r.stdout
    rows = {l.split()[0]: l for l in r.stdout.splitlines() if l[:4].isdigit()}
    assert rows["0000"].rstrip().endswith("yes")          # 8B bf16: ~16 GiB
    assert " no (" in rows["0001"]                         # 8B fp32: ~31 GiB
    assert [p.name for p in workdir.rglob("*")] == ["nvml.json"]  # nothing written


def test_parallel_gpus_sees_the_gpus(tmp_path, monkeypatch):
    from hydra_plugins.llem_plugins.launcher import LlemLocalLauncher

    spec = tmp_path / "nvml.json"
    spec.write_text(json.dumps({"gpus": [{"uuid": "GPU-aaaa"}, {"uuid": "GPU-bbbb"}, {"uuid": "GPU-cccc"}]}))
    monkeypatch.setenv("LLEM_SIMULATED_NVML", str(spec))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert LlemLocalLauncher(parallel_gpus=True).slots() == 3
    assert LlemLocalLauncher(parallel_gpus=False).slots() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")
    assert LlemLocalLauncher(parallel_gpus=True).slots() == 1


def test_resume_refuses_when_a_completed_job_changed(workdir):
    from llem.study import engine
    from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer

    with standalone_composer() as c:
        plan = plan_grid(["batch=1,2", "output_len=4"], c, ExecutionOptions())
    study = workdir / "s"
    run = engine.StudyRun(plan=plan, study_dir=study, study_name="s", launcher_name="local",
                          command_args=["-m", "batch=1,2", "output_len=4"])
    m = engine.new_manifest(run)
    m.jobs[0].status = "completed"
    m.jobs[0].config_hash = "f" * 64  # as if conf/ had been edited since job 0000 ran
    m.save(study)
    before = (study / "manifest.json").read_text()
    r = run_llem("--resume", str(study), cwd=workdir)
    assert r.returncode == 2, r.stderr
    assert "config changed" in r.stderr and "0000 (batch=1 output_len=4): config_hash ffffffffffff ->" in r.stderr
    assert (study / "manifest.json").read_text() == before and not (study / "0001").exists()


def test_resume_takes_no_new_overrides(workdir):
    study = workdir / "s"
    study.mkdir()
    from llem.results.manifest import StudyResult

    StudyResult(study_name="s", study_design_hash="d", llem_version="0", created_at="t", updated_at="t",
                study_dir=str(study), command_args=["-m", "batch=1"]).save(study)
    r = run_llem("--resume", str(study), "batch=4", cwd=workdir)
    assert r.returncode == 2 and "'batch=4' cannot be changed" in r.stderr


def test_sweeps_from_sweeper_params(workdir):
    # sweeps kept in config (hydra.sweeper.params) join the command-line ones
    r = run_llem("-m", "+hydra.sweeper.params.batch='1,2,4'", "output_len=4,8", "--dry-run", cwd=workdir)
    assert r.returncode == 0, r.stderr
    rows = [l for l in r.stdout.splitlines() if l[:4].isdigit()]
    assert len(rows) == 6 and "batch=4 output_len=8" in rows[-1]


def test_sweeper_validates_when_hydra_calls_it_directly(workdir):
    # a Hydra app naming hydra/sweeper=llem without `llem run`: the sweeper plans and validates itself
    import subprocess
    import sys

    code = ("from llem.cli.run import hydra_main; "
            f"hydra_main(['-m', 'batch=1,0', 'hydra.sweep.dir={workdir / 'x'}'])")
    r = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "llem: error: job 1 (batch=0)" in r.stderr and "Traceback" not in r.stderr
    assert not (workdir / "x").exists()
