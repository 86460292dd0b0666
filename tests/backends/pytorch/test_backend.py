"""PyTorch backend on CPU: model sources, precision, pre-load checks, generation, memory, FLOPs."""
from __future__ import annotations

import socket

import pytest
import torch

from llem.backends.pytorch import PyTorchBackend
from llem.config.compose import load_config
from llem.config.schema import ExperimentConfig
from llem.devices import DeviceSet
from llem.errors import ConfigError

NO_GPU = DeviceSet(unavailable_reason="test: CPU")


def make(**over) -> ExperimentConfig:
    base = {"device": "cpu", "output_len": 4, "dataset": {"kind": "synthetic", "name": "s", "num_prompts": 2, "input_len": 8}}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return ExperimentConfig.model_validate(base)


@pytest.fixture(scope="module")
def tiny():
    be = PyTorchBackend(make(), NO_GPU)
    be.load()
    yield be
    be.close()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A local model directory (the tiny architecture's seeded weights + the built-in tokenizer)."""
    be = PyTorchBackend(make(), NO_GPU)
    be.load()
    d = tmp_path_factory.mktemp("tiny-local")
    be.model.save_pretrained(d)
    be.tokenizer.save_pretrained(d)
    be.close()
    return d


def test_generate_gives_exactly_output_len_tokens_per_prompt(tiny):
    b = tiny.prepare([[5, 6, 7, 8], [9, 10, 11, 12]])
    out = tiny.generate(b)
    assert out.output_tokens == 2 * 4 and out.num_requests == 2 and out.input_tokens == 8


def test_timing_hook_gives_one_timestamp_per_token_after_start(tiny):
    out = tiny.generate(tiny.prepare([[5, 6, 7]]), timing=True)
    times = out.token_times[0]
    assert len(times) == 4
    assert out.start_time < times[0] and times == sorted(times) and times[-1] <= out.end_time
    # the same tokens as an untimed call: the clock is a stopping criterion that never stops
    timed = tiny.last_output_ids.tolist()
    tiny.generate(tiny.prepare([[5, 6, 7]]))
    assert tiny.last_output_ids.tolist() == timed


def test_step_clock_places_device_events_on_the_host_clock():
    """The CUDA path of the timing hook, with a test double for CUDA events (no GPU here): each
    step's event is read once after the call, as start + elapsed time since the start event."""
    import torch

    from llem.backends.pytorch.generation import _StepClock

    class FakeEvent:
        recorded = 0

        def __init__(self, **kw):
            self.at_ms = None

        def record(self, stream=None):
            self.at_ms = 10.0 * FakeEvent.recorded
            FakeEvent.recorded += 1

        def elapsed_time(self, other):
            return other.at_ms - self.at_ms

        def synchronize(self):
            pass

    clock = _StepClock(3, torch.device("cpu"))
    clock.cuda, clock.stream = True, None
    clock.events = [FakeEvent() for _ in range(4)]
    clock.start_event = FakeEvent()
    clock.start()  # start event at 0 ms
    ids = torch.zeros((2, 5), dtype=torch.long)
    for width in (6, 7, 9):  # the last step adds two tokens (prompt lookup)
        assert clock(ids[:, :1].expand(2, width)).tolist() == [False, False]
    assert clock.token_times(100.0, prompt_len=5) == pytest.approx([100.01, 100.02, 100.03, 100.03])
    assert clock.host_times == []  # no host clock read per step on the CUDA path


def test_prefill_pass_generates_one_token(tiny):
    out = tiny.prefill(tiny.prepare([[5, 6, 7], [8, 9, 10]]))
    assert out.output_tokens == 2


def test_left_padding_keeps_prompts_right_aligned(tiny):
    b = tiny.prepare([[5, 6], [7, 8, 9]])
    ids, mask = b.payload["input_ids"], b.payload["attention_mask"]
    assert ids[0].tolist() == [tiny.pad_id, 5, 6] and mask[0].tolist() == [0, 1, 1]


def test_local_directory_source_loads_same_weights(tiny_dir, tiny):
    be = PyTorchBackend(make(model={"source": "local", "name": "local", "path": str(tiny_dir)}), NO_GPU)
    be.load()
    b = [[5, 6, 7, 8]]
    assert be.model.generate(**be.prepare(b).payload, **be.generate_kwargs()).tolist() == \
        tiny.model.generate(**tiny.prepare(b).payload, **tiny.generate_kwargs()).tolist()


@pytest.mark.parametrize("prec,dtype", [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_precision_sets_weight_dtype(prec, dtype):
    be = PyTorchBackend(make(precision=prec), NO_GPU)
    be.load()
    assert {p.dtype for p in be.model.parameters()} == {dtype}
    assert be.generate(be.prepare([[5, 6, 7]])).output_tokens == 4


def test_int8_on_cpu_fails_at_validation_naming_allowed_values():
    with pytest.raises(ConfigError, match=r"precision=int8 with device=cpu.*allowed on cpu: fp32, fp16, bf16"):
        load_config(["precision=int8", "device=cpu"])


def test_int4_without_a_quantisation_library_fails_at_validation(monkeypatch):
    import importlib.util

    # the dev install has torchao (for its config path): hide both libraries here
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n in ("bitsandbytes", "torchao") else real_find(n, *a))
    with pytest.raises(ConfigError, match=r"precision=int4 needs bitsandbytes or torchao.*allowed without them"):
        load_config(["precision=int4"])


def test_int4_without_gpu_fails_before_loading(monkeypatch):
    """Test double: pretend bitsandbytes is installed (it is not, here) so the GPU check is reached."""
    import importlib.util

    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "bitsandbytes" else real_find(n, *a))
    cfg = make(precision="int4", device="auto")
    called = []
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", lambda *a, **k: called.append(1))
    with pytest.raises(ConfigError, match=r"precision=int4 needs a CUDA GPU.*allowed here: fp32, fp16, bf16"):
        PyTorchBackend(cfg, NO_GPU)
    assert not called


def test_cuda_device_without_gpu_fails_before_loading():
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        PyTorchBackend(make(device="cuda"), NO_GPU)


def test_hub_id_offline_fails_in_one_line_without_touching_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(ConfigError) as err:
        load_config(["model=hub", "model.path=HuggingFaceTB/SmolLM2-135M"])
    msg = str(err.value)
    assert "\n" not in msg and "HuggingFaceTB/SmolLM2-135M" in msg and "offline mode is on" in msg
    assert "HF_HUB_OFFLINE=1" in msg


def test_sampling_field_without_do_sample_is_refused():
    with pytest.raises(ConfigError, match=r"pytorch.top_p=0.9 has no effect with pytorch.do_sample=false"):
        load_config(["pytorch.top_p=0.9"])


@pytest.mark.parametrize("key,owner", [("max_new_tokens", "output_len"), ("num_beams", "pytorch.num_beams")])
def test_passthrough_refuses_keys_llem_or_a_typed_field_controls(key, owner):
    with pytest.raises(ConfigError, match=key):
        load_config([f"+pytorch.extra_generate_kwargs.{key}=3"])


def test_passthrough_refuses_dtype_which_precision_controls():
    with pytest.raises(ConfigError, match="set by llem from precision"):
        load_config(["+pytorch.extra_load_kwargs.dtype=float16"])


def test_tp_plan_and_device_map_exclude_each_other():
    with pytest.raises(ConfigError, match="exclude each other"):
        load_config(["pytorch.tp_plan=auto", "pytorch.device_map=auto"])


def test_memory_reports_weights_and_says_why_peak_is_missing_on_cpu(tiny):
    mem = tiny.memory()
    expected = sum(p.numel() * p.element_size() for p in tiny.model.parameters())
    expected += sum(b.numel() * b.element_size() for b in tiny.model.buffers())
    assert mem["weights_bytes"] == expected
    assert mem["peak_allocated_bytes"] is None and "CUDA" in mem["peak_not_measured_reason"]


def test_flops_use_the_models_linear_layers(tiny):
    f = tiny.flops(8, 4, 2)
    n_linear = sum(m.in_features * m.out_features for m in tiny.model.modules() if isinstance(m, torch.nn.Linear))
    assert f["linear_params"] == n_linear
    assert f["total_flops"] == f["prefill_flops"] + f["decode_flops"] and f["estimated"] is True
    assert f["flops_per_output_token"] == f["total_flops"] / 8


def test_devices_used_is_empty_on_cpu(tiny):
    assert tiny.devices_used() == []


def test_device_map_on_cpu_loads_through_from_pretrained_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    be = PyTorchBackend(make(pytorch={"device_map": {"": "cpu"}}), NO_GPU)
    be.load()
    # transformers sets hf_device_map only when a model spans several devices
    assert [p.name for p in (tmp_path / "no_weights").iterdir() if p.is_dir()] == ["tiny-float32-seed0"]
    assert {p.device.type for p in be.model.parameters()} == {"cpu"}
    assert be.generate(be.prepare([[5, 6, 7]])).output_tokens == 4


def test_random_weight_checkpoint_holds_the_same_weights_as_direct_init(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    be = PyTorchBackend(make(pytorch={"device_map": "auto"}), NO_GPU)
    be.load()
    b = [[5, 6, 7, 8]]
    be.generate(be.prepare(b))
    tiny.generate(tiny.prepare(b))
    assert be.last_output_ids.tolist() == tiny.last_output_ids.tolist()


@pytest.mark.slow
def test_llem_run_reports_latency_phases_flops_memory(tmp_path):
    import json

    from tests.conftest import FAST, run_llem

    r = run_llem(["run", *FAST, "device=cpu", "energy=none", f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "result.json").read_text())
    lat = res["latency"]
    # the latency pass: whole calls of one request (batch 1) within its budget, at most one pass (2 calls)
    assert 1 <= lat["calls"] <= 2 and lat["ttft_ms"]["n"] == lat["calls"] and lat["itl_ms"]["n"] == lat["calls"] * 3
    assert lat["latency_throughput_ratio"] > 0 and "stopping criterion" in lat["method"]
    ph = res["phases"]
    assert ph["prefill"]["tokens"] == 2 * 32 and ph["decode"]["tokens"] == 2 * 3 and ph["decode"]["energy_j"] is None
    assert ph["energy_not_measured_reason"]
    assert res["flops"]["estimated"] is True and res["flops"]["total_flops"] > 0
    assert res["memory"]["weights_bytes"] > 0 and res["memory"]["peak_allocated_bytes"] is None


def _generate_spy(be, seen):
    real = be.model.generate

    def spy(*a, **kw):
        seen.append(kw)
        return real(*a, **kw)
    be.model.generate = spy


def test_static_cache_is_one_object_per_job_reset_per_call_with_transformers_own_tokens():
    """transformers builds a new static cache per generate call; on a GPU its new addresses make
    compiled decoding re-record CUDA graphs inside measured windows. llem passes one cache per
    batch size instead, reset before each call: the tokens must be the ones transformers' own
    fresh-cache path gives, for prompts of different lengths and repeated calls."""
    outs, kwargs = {}, {}
    for reuse in (True, False):
        be = PyTorchBackend(make(pytorch={"cache_implementation": "static", "reuse_static_cache": reuse}), NO_GPU)
        be.load()
        seen: list = []
        _generate_spy(be, seen)
        short, long_ = be.prepare([[5, 6, 7]]), be.prepare([[9, 10, 11, 12, 13, 14, 15]])
        pair = be.prepare([[5, 6, 7], [8, 9, 10, 11]])
        got = []
        for b in (short, long_, short, pair, long_, pair):
            be.generate(b)
            got.append(be.last_output_ids.tolist())
        outs[reuse], kwargs[reuse], notes = got, seen, be.load_notes
        be.close()
        if reuse:
            assert any("reuse_static_cache" in n for n in notes)
    assert outs[True] == outs[False]
    caches = [kw.get("cache", kw.get("past_key_values")) for kw in kwargs[True]]
    assert all(c is not None for c in caches) and not any("cache_implementation" in kw for kw in kwargs[True])
    one_row, two_rows = {id(c) for c in caches[:3] + caches[4:5]}, {id(c) for c in (caches[3], caches[5])}
    assert len(one_row) == 1 and len(two_rows) == 1 and one_row != two_rows
    assert all(kw["cache_implementation"] == "static" and "cache" not in kw and "past_key_values" not in kw
               for kw in kwargs[False])


@pytest.mark.parametrize("over", [{"num_beams": 2}, {"cache_implementation": "offloaded_static"},
                                  {"extra_generate_kwargs": {"num_return_sequences": 2}}])
def test_static_cache_reuse_stays_off_where_transformers_sizes_the_cache_itself(over):
    be = PyTorchBackend(make(pytorch={"cache_implementation": "static", **over}), NO_GPU)
    be.load()
    try:
        assert be._cache_kwarg is None
        assert be._generate_kw["cache_implementation"] == over.get("cache_implementation", "static")
    finally:
        be.close()
