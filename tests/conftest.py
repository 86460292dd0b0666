"""Shared test helpers. Tests run offline: no model hub is reachable here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
LLEM = str(Path(sys.executable).parent / "llem")

# The fastest meaningful experiment: tiny model, 2 short cycles, no warm-up, and windows of one
# pass (min_window_s=0; its default of a few seconds is checked in tests/test_harness.py).
FAST = ["measurement.cycles=2", "measurement.warmup_runs=0", "measurement.min_window_s=0", "dataset.num_prompts=2",
        "output_len=4"]


def benchmark_path(name: str) -> Path:
    """``benchmarks/<purpose>/<name>`` (each script lives in the folder of its purpose)."""
    found = sorted((REPO / "benchmarks").glob(f"*/{name}"))
    if len(found) != 1:
        raise FileNotFoundError(f"benchmarks/*/{name}: {len(found)} matches")
    return found[0]


def wait_for(condition, limit_s: float = 120.0, step_s: float = 0.01) -> bool:
    """Poll ``condition()`` until it holds: a test waits for a state, never for a fixed time, so
    it asks the same of a fast host and of a loaded one. ``limit_s`` only stops a broken test
    from hanging; it is never what the test measures."""
    import time

    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step_s)
    return True


def load_benchmark(name: str):
    """A script under benchmarks/ as a module (the folders are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, benchmark_path(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_llem(args, cwd, env=None, timeout=300, input=None) -> subprocess.CompletedProcess:
    """Run the CLI as a user types it."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([LLEM, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def llem_cli():
    return run_llem


@pytest.fixture
def fast_overrides():
    return list(FAST)
