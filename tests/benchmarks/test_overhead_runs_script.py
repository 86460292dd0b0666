"""benchmarks/overhead/overhead_runs.sh: its usage error and its time-budget rule (the runs themselves
need an H100; they are committed under docs/validation/h100x1-overhead-runs/)."""
import subprocess

from tests.conftest import benchmark_path

SCRIPT = benchmark_path("overhead_runs.sh")


def _run(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_no_batch_is_a_usage_error(tmp_path):
    r = _run(str(tmp_path / "o"), "100", "8")
    assert r.returncode == 2 and "give at least one batch size" in r.stderr


def test_non_numbers_are_usage_errors(tmp_path):
    for args, field in ((("1x", "8", "128"), "SECONDS=1x"), (("100", "0", "128"), "CYCLES=0"),
                        (("100", "8", "big"), "batch big")):
        r = _run(str(tmp_path / "o"), *args)
        assert r.returncode == 2 and field in r.stderr and "positive whole number" in r.stderr
    assert not (tmp_path / "o").exists()


def test_a_run_that_cannot_fit_the_budget_is_not_started(tmp_path):
    out = tmp_path / "o"
    # an unseen batch is expected to take 150 s, which a 100 s budget cannot hold
    r = _run(str(out), "100", "8", "128")
    assert r.returncode == 0
    assert (out / "runs.txt").read_text().strip() == "stopping: the next batch-128 run (~150 s) would pass 100 s"
    assert not list(out.glob("b128-r*"))


EACH_GPU = SCRIPT.with_name("overhead_runs_each_gpu.sh")


def _fake_nvidia_smi(tmp_path, gpus):
    """A test double for nvidia-smi -L (no GPU here): lists ``gpus`` GPUs."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    smi = bin_ / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + "".join(f"echo 'GPU {i}: NVIDIA H100 (UUID: GPU-{i})'\n" for i in range(gpus)))
    smi.chmod(0o755)
    import os
    return {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}


def test_each_gpu_starts_one_rotation_per_gpu(tmp_path):
    env = _fake_nvidia_smi(tmp_path, 2)
    out = tmp_path / "o"
    r = subprocess.run(["bash", str(EACH_GPU), str(out), "100", "8", "1"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    for i in (0, 1):
        assert (out / f"gpu{i}" / "runs.txt").read_text().startswith("stopping: the next batch-1 run")


def test_each_gpu_reports_a_usage_error_once_and_leaves_nothing(tmp_path):
    env = _fake_nvidia_smi(tmp_path, 2)
    out = tmp_path / "o"
    r = subprocess.run(["bash", str(EACH_GPU), str(out), "100", "8", "big"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2 and r.stderr.count("batch big is not a positive whole number") == 1
    assert not out.exists()


def test_each_gpu_without_a_gpu_is_an_error(tmp_path):
    env = _fake_nvidia_smi(tmp_path, 0)
    r = subprocess.run(["bash", str(EACH_GPU), str(tmp_path / "o"), "100", "8", "1"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 2 and "lists no GPU" in r.stderr


def test_check_only_starts_nothing(tmp_path):
    out = tmp_path / "o"
    assert _run("--check", str(out), "100", "8", "1").returncode == 0
    r = _run("--check", str(out), "100", "8", "0")
    assert r.returncode == 2 and "batch 0 is not a positive whole number" in r.stderr
    assert not out.exists()


def test_an_override_entry_is_checked(tmp_path):
    out = tmp_path / "o"
    assert _run("--check", str(out), "100", "8", "1", "1/measurement.gc_freeze=false").returncode == 0
    assert _run("--check", str(out), "100", "8", "1/--switch-warmup=2", "8/--per-call").returncode == 0
    assert _run("--check", str(out), "100", "8", "1/--quantisation-target=0.2/energy.sample_interval_s=null").returncode == 0
    for bad in ("1/gc freeze", "1/--Switch", "1/--switch-warmup=a b"):
        r = _run("--check", str(out), "100", "8", bad)
        assert r.returncode == 2 and f"{bad[2:]} (in {bad}) is neither an llem override" in r.stderr
    r = _run("--check", str(out), "100", "8", "1/--quantisation-target=0.2/gc freeze")
    assert r.returncode == 2 and "gc freeze (in 1/--quantisation-target=0.2/gc freeze) is neither" in r.stderr
    assert not out.exists()


def test_an_override_entry_reaches_gpu_validation_and_names_its_runs(tmp_path):
    import os
    # a test double for python3 (the runs need an H100): records the arguments it was given
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fake = bin_ / "python3"
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path / 'calls.txt'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    out = tmp_path / "o"
    # 151 s holds one unseen run (~150 s expected) at the start; the fake returns at once, so the
    # rotation goes on until ~2 s have passed
    r = subprocess.run(["bash", str(SCRIPT), str(out), "151", "8", "1", "1/measurement.gc_freeze=false",
                        "1/--switch-warmup=2", "1/--quantisation-target=0.2/energy.sample_interval_s=null"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    plain = [c for c in calls if "--override" not in c and "--switch" not in c]
    alt = [c for c in calls if c.endswith("--override measurement.gc_freeze=false")]
    # a flag entry passes the flag itself, not as an llem override
    flag = [c for c in calls if c.endswith("--no-observers --switch-warmup=2")]
    # parts chain: a flag and an override in one entry
    both = [c for c in calls if c.endswith("--quantisation-target=0.2 --override energy.sample_interval_s=null")]
    assert plain and alt and flag and both and len(plain) + len(alt) + len(flag) + len(both) == len(calls)
    assert f"--out {out}/b1-r0 " in plain[0] and f"--out {out}/b1-measurement_gc_freeze_false-r1 " in alt[0]
    assert f"--out {out}/b1-__switch_warmup_2-r2 " in flag[0]
    assert f"--out {out}/b1-__quantisation_target_0_2_energy_sample_interval_s_null-r3 " in both[0]
    assert "b1-measurement_gc_freeze_false-r1: exit 0" in (out / "runs.txt").read_text()
