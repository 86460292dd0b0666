"""Bad input, as an adversary types it: exit 2, one line naming the field, the value and what is
allowed, and nothing written, in a single run, a study (-m) and a --dry-run alike."""
from __future__ import annotations

from pathlib import Path

import pytest

from llem.backends.pytorch.checks import cuda_available
from tests.conftest import run_llem

LONG_KEY = "k" * 300
NO_GPU = pytest.mark.skipif(cuda_available(), reason="int8/int4 are allowed where torch sees a CUDA GPU")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Bad files a user might point llem at, outside the directory the command runs in."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "garbage.gguf").write_bytes(b"this is no model, just text\n")
    (d / "empty-model").mkdir()
    conf = d / "conf"
    conf.mkdir()
    # an unclosed flow list: the YAML parser fails on line 4
    (conf / "broken.yaml").write_text("defaults:\n  - config\n  - _self_\nbatch: [1, 8\n")
    return d


# (id, arguments with {inputs} for the inputs directory, what the one line must name)
CASES = [
    ("batch-true", ["batch=true"], ["batch=true", "allowed: an integer > 0"]),
    ("output_len-true", ["output_len=true"], ["output_len=true", "allowed: an integer > 0"]),
    ("timeout_s-negative", ["hydra.launcher.timeout_s=-5"], ["hydra.launcher.timeout_s=-5", "allowed: seconds > 0"]),
    ("kill_grace_s-negative", ["hydra.launcher.kill_grace_s=-1"],
     ["hydra.launcher.kill_grace_s=-1", "allowed: seconds >= 0"]),
    ("share_engine-not-a-bool", ["hydra.launcher.share_engine=maybe"],
     ["hydra.launcher.share_engine='maybe'", "not a valid bool", "allowed: true or false"]),
    pytest.param("int4-no-gpu", ["precision=int4"], ["precision=int4", "CUDA GPU", "allowed here: fp32"], marks=NO_GPU),
    pytest.param("int8-no-gpu", ["precision=int8"], ["precision=int8", "CUDA GPU", "allowed here: fp32"], marks=NO_GPU),
    ("key-300-chars", [f"+{LONG_KEY}=1"], [LONG_KEY[:30], "300 characters", "allowed: keys of at most 255"]),
    ("malformed-yaml", ["-cd", "{inputs}/conf", "-cn", "broken"],
     ["{inputs}/conf/broken.yaml", "line 5", "not valid YAML", "allowed: a YAML mapping"]),
    ("unknown-flag", ["--bogus"], ["--bogus", "unknown flag", "allowed: llem's --dry-run"]),
    ("misspelt-flag", ["--dryrun"], ["--dryrun", "did you mean --dry-run?"]),
    ("garbage-gguf", ["model=gguf", "model.path={inputs}/garbage.gguf"],
     ["model.path='{inputs}/garbage.gguf'", "not a GGUF file", "allowed: a GGUF model file"]),
    ("empty-local-model", ["model=local", "model.path={inputs}/empty-model"],
     ["model.path='{inputs}/empty-model'", "no config.json", "allowed: a model directory"]),
    ("unquoted-unicode", ["model.name=héllo"],
     ["model.name=héllo", "character 'é'", "allowed unquoted: ASCII letters", "'model.name=\"héllo\"'"]),
    ("misspelt-key", ["bacth=8"], ["bacth", "unknown key", "did you mean 'batch'?", "allowed:"]),
    # a real key of another backend's section: not "unknown", and no job takes it ("this run" or "this grid")
    ("another-backends-key", ["backend=pytorch", "vllm.enforce_eager=true"],
     ["vllm.enforce_eager=true: applies to backend=vllm only;", "has backend=pytorch", "or leave the key out"]),
]
# a second swept key, so the study and the dry run are real grids of two jobs
MODES = {
    "run": lambda a: ["run", *a],
    "study": lambda a: ["run", "-m", "dataset.num_prompts=2,3", *a],
    "dry-run": lambda a: ["run", "-m", "dataset.num_prompts=2,3", "--dry-run", *a],
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case, args, needles", CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(inputs, tmp_path, mode, case, args, needles):
    work = tmp_path / "work"
    work.mkdir()
    fill = [a.replace("{inputs}", str(inputs)) for a in args]
    r = run_llem(MODES[mode](fill), cwd=work, env={"HF_HUB_OFFLINE": "1"})
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith("llem: error: "), err
    for n in needles:
        assert n.replace("{inputs}", str(inputs)) in err, (n, err)
    assert r.stdout == ""
    # nothing written: no run directory, no multirun/, no log, anywhere under the cwd
    assert list(work.rglob("*")) == []


def test_int8_int4_are_refused_by_the_backends_own_gpu_detection(monkeypatch):
    """The validation asks the same function as the backend's preflight, so a machine whose
    torch sees a GPU is allowed, and one without is refused."""
    from llem.backends import check_runs_here
    from llem.backends import pytorch
    from llem.backends.pytorch import checks
    from llem.config.compose import load_config
    from llem.errors import ConfigError

    cfg = load_config(["precision=int4"])
    monkeypatch.setattr(checks, "cuda_available", lambda: True)
    check_runs_here(cfg)
    monkeypatch.setattr(checks, "cuda_available", lambda: False)
    with pytest.raises(ConfigError, match="precision=int4 needs a CUDA GPU") as e:
        check_runs_here(cfg)
    assert e.value.field == "precision" and e.value.value == "int4"
    # the backend's own preflight refuses with the same detection
    be = pytorch.PyTorchBackend.__new__(pytorch.PyTorchBackend)
    be.config = cfg
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        be._quant_library()


def test_int4_study_for_slurm_is_not_refused_on_a_login_node_without_gpu(tmp_path):
    # the jobs run on Slurm's compute nodes: this machine's hardware says nothing about them
    r = run_llem(["run", "-m", "hydra/launcher=slurm", "precision=int4,bf16", "--dry-run"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "int4" in r.stdout and list(tmp_path.iterdir()) == []

