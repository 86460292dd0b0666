"""The vLLM backend: config mapping (here), and real vLLM (in the vLLM venv, through a subprocess).

The slow tests share one vLLM engine: a single probe process in the venv runs every check that
needs vLLM and writes what it saw as JSON; the tests below assert on it.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from llem.config.schema import ExperimentConfig
from llem.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def vllm_python() -> Path:
    """The vLLM venv's python; in CI its absence is a failure, never a silent skip."""
    venv = Path(os.environ.get("LLEM_VENV_VLLM") or REPO / ".venv-vllm").expanduser()
    py = venv / "bin" / "python"
    if not py.exists():
        msg = f"no vLLM venv at {venv}: run scripts/setup-vllm-env.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return py


def vllm_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.pop("PYTHONPATH", None)
    return env


def cfg(**kw) -> ExperimentConfig:
    return ExperimentConfig(backend="vllm", **kw)


# --- config mapping: no vLLM needed ------------------------------------------------------------
def test_static_batch_sets_max_num_seqs_to_batch_and_fixes_output_length():
    from llem.backends.vllm import engine_kwargs, sampling_kwargs

    c = cfg(batch=8, output_len=17, precision="bf16")
    kw = engine_kwargs(c, "/m")
    assert kw["max_num_seqs"] == 8 and kw["dtype"] == "bfloat16" and kw["load_format"] == "dummy"
    assert kw["enable_prefix_caching"] is False  # repeated prompts must not skip prefill
    sp = sampling_kwargs(c)
    assert sp["max_tokens"] == sp["min_tokens"] == 17 and sp["ignore_eos"] is True
    assert sampling_kwargs(c, max_tokens=1)["max_tokens"] == 1


def test_continuous_batching_caps_concurrency_with_max_num_seqs():
    from llem.backends.vllm import engine_kwargs

    c = cfg(batch=2, vllm={"batching": "continuous", "max_num_seqs": 16})
    assert engine_kwargs(c, "/m")["max_num_seqs"] == 16
    assert engine_kwargs(cfg(batch=4, vllm={"batching": "continuous"}), "/m")["max_num_seqs"] == 4


@pytest.mark.parametrize("kw, field", [
    (dict(batch=8, vllm={"max_num_seqs": 4}), "vllm.max_num_seqs"),
    (dict(precision="int4"), "vllm.quantization"),
    (dict(precision="fp8", vllm={"quantization": "awq"}), "precision"),
    (dict(precision="int4", vllm={"quantization": "awq"}), "vllm.quantization"),  # random weights
    (dict(precision="bf16", vllm={"quantization": "nonsense"}), "vllm.quantization"),
    (dict(vllm={"extra_engine_args": {"max_num_seqs": 3}}), "vllm.extra_engine_args.max_num_seqs"),
    (dict(vllm={"extra_sampling_params": {"max_tokens": 3}}), "vllm.extra_sampling_params.max_tokens"),
])
def test_bad_vllm_config_is_a_config_error_naming_the_field(kw, field):
    with pytest.raises(ConfigError) as err:
        cfg(**kw)
    assert err.value.field == field
    assert "allowed" in str(err.value) and "\n" not in str(err.value)


def test_precision_maps_to_dtype_and_quantization(tmp_path):
    from llem.backends.vllm import engine_kwargs

    kw = engine_kwargs(cfg(precision="fp8"), "/m")
    assert kw["quantization"] == "fp8" and kw["dtype"] == "bfloat16"
    (tmp_path / "config.json").write_text("{}")  # validation asks for a config and weights
    (tmp_path / "model.safetensors").write_bytes(b"")
    local = {"source": "local", "name": "q", "path": str(tmp_path)}
    kw = engine_kwargs(cfg(precision="int4", model=local, vllm={"quantization": "awq"}))
    assert kw["quantization"] == "awq" and kw["dtype"] == "float16" and "load_format" not in kw
    assert engine_kwargs(cfg(precision="fp16"), "/m").get("quantization") is None


def test_bad_vllm_override_exits_2_before_loading(llem_cli, tmp_path):
    r = llem_cli(["run", "backend=vllm", "precision=int4"], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "vllm.quantization" in r.stderr and "allowed" in r.stderr
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


# --- real vLLM in its venv ------------------------------------------------------------------------
PROBE = r'''
import dataclasses, json, sys, time
from llem.backends import vllm as vb
from llem.config.schema import ExperimentConfig
from llem.errors import ConfigError
from llem.measure.harness import run
out = {}
vb.keep_engines(True)
fast = dict(output_len=4, measurement={"cycles": 2, "warmup_runs": 0, "min_window_s": 0}, energy={"meter": "none"},
            dataset={"kind": "synthetic", "name": "synthetic", "num_prompts": 4, "input_len": 16})
vl = {"enforce_eager": True, "max_num_seqs": 4, "max_model_len": 256, "top_k": 5, "temperature": 0.5,
      "extra_engine_args": {"max_logprobs": 7}, "extra_sampling_params": {"seed": 11}}
static = ExperimentConfig(backend="vllm", batch=2, vllm=vl, **fast)
cont = ExperimentConfig(backend="vllm", batch=2, vllm=dict(vl, batching="continuous"), **fast)
for name, c in (("static", static), ("continuous", cont)):
    out[name] = json.loads(run(c).model_dump_json())

b = vb.VLLMBackend(static, None)
b.load()
vc = b.llm.llm_engine.vllm_config
out["engine"] = {"max_num_seqs": vc.scheduler_config.max_num_seqs, "max_model_len": vc.model_config.max_model_len,
                 "enforce_eager": vc.model_config.enforce_eager, "dtype": str(vc.model_config.dtype),
                 "enable_prefix_caching": vc.cache_config.enable_prefix_caching, "seed": vc.model_config.seed,
                 "tensor_parallel_size": vc.parallel_config.tensor_parallel_size,
                 "max_logprobs": vc.model_config.max_logprobs, "reused": b.engine_reused}
sp = b._sampling
out["sampling"] = {k: getattr(sp, k) for k in ("top_k", "seed", "temperature", "max_tokens", "min_tokens", "ignore_eos")}
batch = b.prepare([[5 + i] * 16 for i in range(3)])
g = b.generate(batch, timing=True)
out["timed"] = {"output_tokens": g.output_tokens, "start": g.start_time, "times": g.token_times, "path": b.latency_path}
p = b.prefill(batch)
out["prefill"] = {"output_tokens": p.output_tokens, "num_requests": p.num_requests, "input_tokens": p.input_tokens}
plain = b.generate(batch)
out["plain"] = {"output_tokens": plain.output_tokens, "input_tokens": plain.input_tokens}
b.close()

# typos in passthrough keys are caught before any engine starts
n_engines = len(vb._ENGINES)
for key, extra in (("engine", {"extra_engine_args": {"max_num_seqz": 3}}), ("sampling", {"extra_sampling_params": {"topk": 3}})):
    bad = ExperimentConfig(backend="vllm", vllm=dict(enforce_eager=True, **extra))
    bb = vb.VLLMBackend(bad, None)
    try:
        bb.load(); out[f"bad_{key}"] = None
    except ConfigError as e:
        out[f"bad_{key}"] = {"field": e.field, "message": str(e), "llm": bb.llm is None}
out["engines_started_by_bad"] = len(vb._ENGINES) - n_engines

# coverage by introspection: every passthrough field really passes through, unchanged
from vllm.engine.arg_utils import EngineArgs
from vllm import SamplingParams
ef = [f.name for f in dataclasses.fields(EngineArgs)]
sf = list(getattr(SamplingParams, "__struct_fields__", ()))
cov = vb.parameter_coverage(ef, sf)
model_dir = b.engine_kwargs["model"]
proto = EngineArgs(model=model_dir)
lost = []
for f, route in cov["engine"]["routes"].items():
    if route == "passthrough":
        val = getattr(proto, f)
        c = ExperimentConfig(backend="vllm", vllm={"extra_engine_args": {f: val}})
        kw = vb.engine_kwargs(c, "/m")
        if f not in kw or kw[f] is not val:
            lost.append(f)
for f, route in cov["sampling"]["routes"].items():
    if route == "passthrough":
        c = ExperimentConfig(backend="vllm", vllm={"extra_sampling_params": {f: None}})
        if f not in vb.sampling_kwargs(c):
            lost.append(f)
kw = vb.engine_kwargs(static, model_dir)
EngineArgs(**kw)  # every typed/managed key is a real EngineArgs field
SamplingParams(**vb.sampling_kwargs(static))
out["coverage"] = {k: {x: v[x] for x in ("total", "covered", "fraction")} for k, v in cov.items()}
out["coverage_lost"] = lost
out["typed_engine_keys_unknown"] = sorted(set(vb.ENGINE_TYPED) - set(ef))
out["typed_sampling_keys_unknown"] = sorted(set(vb.SAMPLING_TYPED) - set(sf))
vb.release_engines()
json.dump(out, open(sys.argv[1], "w"))
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    py = vllm_python()
    d = tmp_path_factory.mktemp("vllm_probe")
    script, out = d / "probe.py", d / "out.json"
    script.write_text(PROBE)
    r = subprocess.run([str(py), str(script), str(out)], cwd=d, env=vllm_env(), capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(out.read_text())




@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("mode", ["static", "continuous"])
def test_harness_runs_vllm_with_fixed_output_length(probe, mode):
    r = probe[mode]
    assert r["status"] == "completed" and r["backend"] == "vllm" and r["device"] == "cpu"
    assert r["backend_version"]
    # whole generate calls (2 prompts each static, all 4 continuous) x 4 tokens, counted from vLLM's outputs
    per_call = 2 if mode == "static" else 4
    calls = sum(c["calls"] for c in r["cycles"])
    assert calls >= 2 and r["output_tokens"] == calls * per_call * 4 and r["input_tokens"] == calls * per_call * 16
    assert r["output_tokens_per_s"] > 0
    be = r["measurement_methodology"]["backend"]
    assert be["batching"] == mode and be["max_num_seqs"] == 4
    assert be["stream_interval"] in (None, 1)  # one timestamp per token, not per group of tokens
    batches = r["measurement_methodology"]["window"]["batches_per_pass"]
    assert batches == (2 if mode == "static" else 1)
    assert r["energy"]["measured"] is False and r["energy"]["energy_j"] is None  # meter none: no zeros
    assert r["flops"]["estimated"] is True and r["flops"]["total_flops"] > 0
    lat = r["latency"]
    # the latency pass: at least one call, at most one pass, within its budget
    assert 1 <= lat["calls"] <= 4 // per_call and lat["requests"] == lat["calls"] * per_call
    assert lat["ttft_ms"]["n"] == lat["requests"] and lat["ttft_ms"]["p50"] > 0
    assert lat["itl_ms"]["n"] == lat["requests"] * 3 and lat["itl_ms"]["mean"] > 0
    assert lat["latency_throughput_ratio"] > 0


@pytest.mark.slow
@pytest.mark.vllm
def test_engine_is_shared_when_engine_args_match(probe):
    assert probe["static"]["measurement_methodology"]["backend"]["engine_reused"] is False
    assert probe["continuous"]["measurement_methodology"]["backend"]["engine_reused"] is True
    assert probe["engine"]["reused"] is True


@pytest.mark.slow
@pytest.mark.vllm
def test_typed_fields_reach_engine_and_sampling_params(probe):
    e = probe["engine"]
    assert e["max_num_seqs"] == 4 and e["max_model_len"] == 256 and e["enforce_eager"] is True
    assert e["enable_prefix_caching"] is False and e["tensor_parallel_size"] == 1 and e["seed"] == 0
    assert e["dtype"] == "torch.float32"
    assert e["max_logprobs"] == 7  # extra_engine_args passthrough
    s = probe["sampling"]
    assert s["top_k"] == 5 and s["seed"] == 11 and s["temperature"] == 0.5
    assert s["max_tokens"] == s["min_tokens"] == 4 and s["ignore_eos"] is True


@pytest.mark.slow
@pytest.mark.vllm
def test_streaming_pass_gives_a_timestamp_per_token(probe):
    t = probe["timed"]
    assert t["output_tokens"] == 3 * 4 and len(t["times"]) == 3
    for times in t["times"]:
        assert len(times) == 4
        assert times[0] > t["start"] and times == sorted(times)
        assert times[-1] > times[0]  # tokens arrive over several steps, not in one final batch
    assert "DELTA" in t["path"]


@pytest.mark.slow
@pytest.mark.vllm
def test_prefill_pass_generates_one_token_per_prompt(probe):
    assert probe["prefill"] == {"output_tokens": 3, "num_requests": 3, "input_tokens": 3 * 16}
    assert probe["plain"] == {"output_tokens": 3 * 4, "input_tokens": 3 * 16}


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("key, field", [("engine", "vllm.extra_engine_args.max_num_seqz"),
                                        ("sampling", "vllm.extra_sampling_params.topk")])
def test_unknown_passthrough_key_fails_before_loading(probe, key, field):
    bad = probe[f"bad_{key}"]
    assert bad is not None and bad["field"] == field and bad["llm"] is True
    assert probe["engines_started_by_bad"] == 0
    if key == "engine":
        assert "max_num_seqs" in bad["message"]  # suggests the near miss


@pytest.mark.slow
@pytest.mark.vllm
def test_parameter_coverage_at_least_90_percent(probe):
    for kind in ("engine", "sampling"):
        c = probe["coverage"][kind]
        assert c["total"] > 20 and c["fraction"] >= 0.9, (kind, c)
    assert probe["coverage_lost"] == []
    assert probe["typed_engine_keys_unknown"] == [] and probe["typed_sampling_keys_unknown"] == []


def test_vllm_container_gets_a_large_dev_shm(tmp_path):
    """Docker's default 64 MB /dev/shm crashes vLLM's workers: the vLLM container asks for >= 8 GiB."""
    from llem.runners.container import ContainerRunner

    c = cfg(device="cpu")
    cmd = ContainerRunner("vllm", image="llenergymeasure/vllm:test").docker_command(
        c, tmp_path / "job", tmp_path / "c.json", tmp_path / "o.json", "llem-test")
    size = cmd[cmd.index("--shm-size") + 1].lower()
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    n = float(size[:-1]) * units[size[-1]] if size[-1] in units else float(size)
    assert n >= 8 * 2**30, size


@pytest.mark.slow
@pytest.mark.vllm
def test_setup_script_is_idempotent_and_leaves_a_clean_vllm_venv():
    """A second run of scripts/setup-vllm-env.sh on the existing venv installs nothing."""
    py = vllm_python()
    venv = py.parent.parent
    r = subprocess.run(["bash", str(REPO / "scripts" / "setup-vllm-env.sh"), str(venv)], env=vllm_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "installing" not in r.stderr and "ready" in r.stderr
    chk = subprocess.run([str(py), "-c", "import importlib.util as u, llem, json; print(json.dumps("
                          "[u.find_spec(m) is not None for m in ('torchvision', 'triton', 'torchaudio')] + [llem.__file__]))"],
                         env=vllm_env(), capture_output=True, text=True, timeout=120)
    found = json.loads(chk.stdout)
    assert found[:3] == [False, False, False]  # removed: they break `import vllm` beside the CPU torch
    assert Path(found[3]).resolve().is_relative_to(REPO)  # llem editable from this checkout
    # the same meters as the main environment, at pyproject's pins (a vLLM job measures like a PyTorch one)
    meters = subprocess.run([str(py), "-c", "from importlib.metadata import version as v; "
                             "print(v('codecarbon'), v('zeus'))"], env=vllm_env(), capture_output=True, text=True)
    assert meters.returncode == 0, meters.stderr[-2000:]
    pyproject = (REPO / "pyproject.toml").read_text()
    for name, got in zip(("codecarbon", "zeus"), meters.stdout.split()):
        assert f'{name} = ["{name}=={got}"]' in pyproject, (name, got)


@pytest.mark.parametrize("arch", ["tiny", "llama-3.2-1b", "qwen2.5-7b"])
def test_flops_params_from_config_match_the_built_model(arch):
    """vLLM fuses its layers, so the vLLM backend counts linear weights from the config: the count
    must equal what the PyTorch backend's FLOPs code finds in a model built from the same config."""
    from types import SimpleNamespace

    import torch

    from transformers import AutoConfig, AutoModelForCausalLM

    from llem.backends.vllm import llama_family_linear_params
    from llem.models.flops import linear_params
    from llem.models.sources import architecture_config

    hf = AutoConfig.for_model(**architecture_config(SimpleNamespace(architecture=arch)))
    if arch != "tiny":  # count the big ones without allocating their weights
        hf.num_hidden_layers = 1
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf)
    assert llama_family_linear_params(hf) == linear_params(model)


def test_latency_pass_failure_becomes_not_measured_never_a_failed_job():
    """If a vLLM lacks the streaming engine API, latency is reported as not measured (with the
    reason) and the energy windows stand; here vLLM is absent, which exercises that path."""
    from llem.backends.vllm import VLLMBackend
    from llem.measure.latency import measure_latency

    b = VLLMBackend(cfg(), None)
    b.llm = object()
    b._sampling = None
    lat = measure_latency(b, [b.prepare([[5] * 4])])
    assert lat is not None and lat.method.startswith("not measured") and lat.ttft_ms.n == 0
    assert b.latency_path.startswith("unavailable on vLLM")


@pytest.mark.parametrize("mode", ["static", "continuous"])
def test_latency_method_names_the_batching_that_ran(mode):
    from llem.backends.base import GenerationOutput
    from llem.backends.vllm import VLLMBackend
    from llem.measure.latency import measure_latency

    b = VLLMBackend(cfg(batch=2, vllm={"batching": mode, "max_num_seqs": 6}), None)
    b.generate = lambda batch, timing=False: GenerationOutput(
        input_tokens=8, output_tokens=4, num_requests=2, start_time=0.0, token_times=[[0.1, 0.2]] * 2)
    method = measure_latency(b, [b.prepare([[5] * 4] * 2)]).method
    if mode == "continuous":
        assert "continuous batching" in method and "up to 6 in flight" in method and "static" not in method
    else:
        assert "static batching" in method and "continuous" not in method
