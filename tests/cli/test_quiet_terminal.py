"""A single ``llem run`` keeps its terminal for llem's own lines; third-party output goes to run.log."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import FAST, REPO, run_llem

# Hydra's logging set-up for a job (console on stdout, file beside it), then a job that makes the
# kinds of noise libraries make: a warning record from a third-party logger (torchao's missing
# extension), a library's own stderr handler that does not propagate (torch._logging's), a Python
# warning, print, raw writes to the descriptors (C code), a child process; and llem's own lines.
_JOB = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from llem.runners.logfilter import job_output_to_log

    log_path, quiet = sys.argv[1], sys.argv[2] == "quiet"
    fmt = logging.Formatter("[%(name)s][%(levelname)s] - %(message)s")
    console, file = logging.StreamHandler(sys.stdout), logging.FileHandler(log_path)
    for h in (console, file):
        h.setFormatter(fmt)
        logging.getLogger().addHandler(h)
    logging.getLogger().setLevel(logging.INFO)
    with job_output_to_log(log_path, quiet=quiet):
        logging.getLogger("llem").info("llem progress: cycle 1/2")
        logging.getLogger("llem.measure.harness").warning("llem warning: short window")
        logging.getLogger("torchao").warning("Failed to load _C_mxfp8.so: third-party noise")
        own = logging.getLogger("torch.utils._pytree")  # as torch._logging sets its loggers up
        own.propagate = False
        own.addHandler(logging.StreamHandler())
        own.warning("register_constant() on Enum subclasses is deprecated")
        warnings.warn("a FutureWarning from a library", FutureWarning)
        print("a library's print")
        os.write(2, b"raw stderr from C code\\n")
        subprocess.run([sys.executable, "-c", "print('a child process')"])
        logging.getLogger("vllm").error("third-party error: engine died")
    print("after the job: summary")
""")

NOISE = ("third-party noise", "register_constant", "FutureWarning", "a library's print", "raw stderr from C code",
         "a child process")


def _run_job(tmp_path: Path, quiet: bool = False) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "run.log"
    p = subprocess.run([sys.executable, "-c", _JOB, str(log), "quiet" if quiet else "normal"],
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p, log.read_text()


def test_third_party_output_goes_to_the_log_and_llem_lines_to_the_terminal(tmp_path):
    p, log = _run_job(tmp_path)
    terminal = p.stdout + p.stderr
    assert "llem progress: cycle 1/2" in terminal and "llem warning: short window" in terminal
    assert "third-party error: engine died" in terminal  # an error is never hidden
    assert "after the job: summary" in p.stdout  # the terminal is back once the job ends
    for noise in NOISE:
        assert noise not in terminal, noise
        assert noise in log, noise
    assert "llem warning: short window" in log and "third-party error" in log


def test_quiet_keeps_llem_warnings_only(tmp_path):
    p, log = _run_job(tmp_path, quiet=True)
    terminal = p.stdout + p.stderr
    assert "llem warning: short window" in terminal
    assert "llem progress" not in terminal and "llem progress: cycle 1/2" in log
    assert "third-party noise" not in terminal


def test_a_venv_worker_writes_llem_lines_to_the_descriptor_it_was_given(tmp_path):
    """The worker side: llem's records to the inherited terminal descriptor, the rest to its stderr."""
    code = textwrap.dedent("""
        import logging, sys
        from llem.runners.logfilter import add_console_from_env
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        add_console_from_env()
        logging.getLogger("llem").info("llem progress from the worker")
        logging.getLogger("vllm").warning("Tokenizer not available: third-party noise")
    """)
    r, w = os.pipe()
    p = subprocess.run([sys.executable, "-c", code], pass_fds=(w,), capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO), "LLEM_CONSOLE_FD": f"{w},20"})
    os.close(w)
    with os.fdopen(r) as f:
        console = f.read()
    assert p.returncode == 0, p.stderr
    assert "llem progress from the worker" in console and "third-party noise" not in console
    assert "third-party noise" in p.stderr  # the worker's stderr is the job's log


@pytest.mark.slow
def test_llem_run_terminal_shows_llem_lines_and_run_log_has_everything(tmp_path):
    p = run_llem(["run", *FAST, "energy.baseline.enabled=false", "hydra.run.dir=out"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    terminal = p.stdout + p.stderr
    log = (tmp_path / "out" / "run.log").read_text()
    assert "[llem][INFO] - measuring" in terminal and "[llem][INFO] - measuring" in log
    assert "== llem: pytorch" in p.stdout  # the summary
    # whatever else the libraries said (torchao and torch on a machine that has them) is in the log only
    others = [ln for ln in log.splitlines() if ln.strip() and "[llem]" not in ln]
    for ln in others:
        assert ln not in terminal, ln
