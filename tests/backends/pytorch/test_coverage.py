"""Parameter coverage: the installed transformers' generate and loading parameters are reachable
from the config, and every typed ``pytorch:`` field really reaches the call it is meant for
(spies wrap the real calls, which still run)."""
from __future__ import annotations

import importlib.util
import inspect
import re

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedModel

from llem.backends.pytorch import PyTorchBackend
from llem.config.pytorch_options import TYPED_GENERATE, TYPED_LOAD
from llem.config.schema import PyTorchConfig
from tests.backends.pytorch.test_backend import NO_GPU, make, tiny_dir  # noqa: F401  (tiny_dir: shared fixture)

SENTINEL = object()
# keys llem sets from one of its own fields (tested to reach the call below)
VIA_LLEM = {"max_new_tokens": "output_len", "min_new_tokens": "output_len", "dtype": "precision",
            "torch_dtype": "precision", "quantization_config": "precision", "gguf_file": "model.gguf_file",
            "revision": "model.revision", "tp_plan": "pytorch.tp_plan", "tp_size": "pytorch.tp_size",
            "distributed_config": "pytorch.tp_plan"}


def generate_parameters() -> list[str]:
    return sorted(k for k in GenerationConfig().to_dict() if not k.startswith("_") and k != "transformers_version")


def loading_parameters() -> list[str]:
    sig = inspect.signature(PreTrainedModel.from_pretrained)
    named = [p for p in sig.parameters if p not in ("cls", "pretrained_model_name_or_path", "model_args", "kwargs")]
    popped = re.findall(r'kwargs\.pop\(\s*"(\w+)"', inspect.getsource(PreTrainedModel.from_pretrained))
    return sorted({k for k in named + popped if not k.startswith("_")})


def _reachable(key: str, section: str) -> bool:
    typed = TYPED_GENERATE if section == "extra_generate_kwargs" else TYPED_LOAD
    if key in typed or key in VIA_LLEM:
        return True
    try:
        cfg = make(pytorch={section: {key: SENTINEL}})
    except Exception:
        return False
    be = PyTorchBackend(cfg, NO_GPU)
    kw = be.generate_kwargs() if section == "extra_generate_kwargs" else be.load_kwargs()
    return kw.get(key) is SENTINEL


@pytest.mark.parametrize("section,params", [("extra_generate_kwargs", generate_parameters),
                                            ("extra_load_kwargs", loading_parameters)])
def test_at_least_95_percent_of_installed_transformers_parameters_are_reachable(section, params):
    keys = params()
    assert len(keys) > 20, f"introspection of transformers {transformers.__version__} found too few: {keys}"
    missing = [k for k in keys if not _reachable(k, section)]
    share = 1 - len(missing) / len(keys)
    assert share >= 0.95, f"{section}: {share:.1%} reachable; not reachable: {missing}"


def test_every_typed_field_is_covered_by_a_reach_test():
    tested = set(LOAD_VALUES) | set(COMPILE_VALUES) | {k for g in GENERATE_GROUPS for k in g} | {
        "extra_load_kwargs", "extra_generate_kwargs", "tp_plan", "tp_size", "quantization"}
    assert set(PyTorchConfig.model_fields) - tested == set()


# --- loading -------------------------------------------------------------------------------------
LOAD_VALUES = {"attn_implementation": "eager", "device_map": {"": "cpu"}, "max_memory": {"cpu": "4GiB"},
               "low_cpu_mem_usage": False, "trust_remote_code": True}


@pytest.fixture
def spy_from_pretrained(monkeypatch):
    calls = []
    real = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *a, **kw):
        calls.append(kw)
        return real(cls, *a, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    return calls


def test_typed_loading_fields_reach_from_pretrained(tiny_dir, spy_from_pretrained):
    be = PyTorchBackend(make(model={"source": "local", "name": "l", "path": str(tiny_dir)}, precision="bf16",
                             pytorch={**LOAD_VALUES, "extra_load_kwargs": {"key_mapping": None}}), NO_GPU)
    be.load()
    (kw,) = spy_from_pretrained
    for k, v in LOAD_VALUES.items():
        assert kw[k] == v, k
    assert kw["dtype"] is torch.bfloat16 and "key_mapping" in kw
    assert be.model.config._attn_implementation == "eager"


def test_random_weight_model_reaches_from_config(monkeypatch):
    calls = []
    real = AutoModelForCausalLM.from_config.__func__

    def spy(cls, *a, **kw):
        calls.append(kw)
        return real(cls, *a, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_config", classmethod(spy))
    be = PyTorchBackend(make(precision="bf16", pytorch={"attn_implementation": "eager", "trust_remote_code": True}), NO_GPU)
    be.load()
    (kw,) = calls
    assert kw == {"dtype": torch.bfloat16, "trust_remote_code": True, "attn_implementation": "eager"}


def test_tp_fields_become_a_distributed_config():
    be = PyTorchBackend(make(pytorch={"tp_plan": "auto", "tp_size": 2}), NO_GPU)
    dc = be.load_kwargs()["distributed_config"]
    assert dc.tp_size == 2


def test_int4_builds_a_bitsandbytes_config_when_a_gpu_is_present(monkeypatch):
    """Test double: this machine has no GPU and no bitsandbytes, so both are faked for the
    config-building step only; nothing is quantised here."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "bitsandbytes" else real_find(n, *a))
    be = PyTorchBackend.__new__(PyTorchBackend)
    be.config = make(precision="int4", device="auto")
    q = be.load_kwargs()["quantization_config"]
    assert type(q).__name__ == "BitsAndBytesConfig" and q.load_in_4bit and q.bnb_4bit_quant_type == "nf4"


# --- torch.compile ---------------------------------------------------------------------------------
COMPILE_VALUES = {"torch_compile": True, "torch_compile_mode": "reduce-overhead", "torch_compile_backend": "eager"}


def test_compile_fields_reach_torch_compile(monkeypatch):
    calls = []
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or real(fn, **kw))
    be = PyTorchBackend(make(pytorch=COMPILE_VALUES), NO_GPU)
    be.load()
    assert calls == [{"mode": "reduce-overhead", "backend": "eager"}]
    assert be.generate(be.prepare([[5, 6, 7]])).output_tokens == 4


# --- generate --------------------------------------------------------------------------------------
GENERATE_GROUPS = [
    {"do_sample": True, "temperature": 0.7, "top_k": 20, "top_p": 0.9, "min_p": 0.05, "typical_p": 0.95,
     "epsilon_cutoff": 0.0003, "eta_cutoff": 0.0004, "repetition_penalty": 1.1,
     # reuse off: transformers' own per-call cache, so the field itself arrives (reuse on:
     # tests/backends/pytorch/test_backend.py, one cache object in its place)
     "cache_implementation": "static", "reuse_static_cache": False},
    {"num_beams": 2, "length_penalty": 0.8, "early_stopping": True, "use_cache": False},
    {"prompt_lookup_num_tokens": 2},
]


@pytest.mark.parametrize("fields", GENERATE_GROUPS, ids=["sampling+static-cache", "beams", "prompt-lookup"])
def test_typed_decoding_fields_reach_generate(fields):
    be = PyTorchBackend(make(pytorch={**fields, "extra_generate_kwargs": {"renormalize_logits": True}}), NO_GPU)
    be.load()
    calls = []
    real = be.model.generate
    be.model.generate = lambda **kw: calls.append(kw) or real(**kw)
    out = be.generate(be.prepare([[5, 6, 7, 8]]))
    (kw,) = calls
    for k, v in fields.items():
        assert k == "reuse_static_cache" or kw[k] == v, k
    assert kw["max_new_tokens"] == kw["min_new_tokens"] == 4 and kw["renormalize_logits"] is True
    assert out.output_tokens == 4




def test_torchao_int4_uses_the_kernel_that_ships_with_torch_without_mslk(monkeypatch):
    """Real torchao config objects; the GPU is faked for the config-building step only (an H100
    run with torchao 0.17's default "plain" int4 layout failed: it needs the mslk package)."""
    torchao = pytest.importorskip("torchao")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in ("mslk", "bitsandbytes") else real_find(n, *a))
    be = PyTorchBackend.__new__(PyTorchBackend)
    be.config = make(precision="int4", device="auto")
    be.load_notes = []
    q = be.load_kwargs()["quantization_config"]
    assert type(q).__name__ == "TorchAoConfig"
    assert str(getattr(q.quant_type.int4_packing_format, "value", q.quant_type.int4_packing_format)) == "tile_packed_to_4d"
    d = be.describe()["quantization"]
    assert d["library"] == "torchao" and d["version"] == torchao.__version__ and "tile_packed_to_4d" in d["int4_packing_format"]
    # with mslk present torchao's own default stays
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "mslk" else
                        (None if n == "bitsandbytes" else real_find(n, *a)))
    q = be.load_kwargs()["quantization_config"]
    assert str(getattr(q.quant_type.int4_packing_format, "value", q.quant_type.int4_packing_format)) == "plain"
    assert be.describe()["quantization"]["int4_packing_format"].startswith("plain")


def test_quantised_weights_are_placed_on_the_job_gpu(monkeypatch):
    """Test double for the GPU (config step only): without a device_map torchao left an H100
    run's int8 weights on the CPU, so llem now always says where quantised weights go."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "bitsandbytes" else real_find(n, *a))
    be = PyTorchBackend.__new__(PyTorchBackend)
    be.config = make(precision="int8", device="cuda:0")
    assert be.load_kwargs()["device_map"] == {"": "cuda:0"}
    be.config = make(precision="int8", device="auto", pytorch={"device_map": "auto"})
    assert be.load_kwargs()["device_map"] == "auto"  # the user's own map wins


def test_a_model_left_off_the_job_gpu_fails_the_job_and_offload_is_a_warning():
    from transformers import AutoConfig, AutoModelForCausalLM

    from llem.models.sources import architecture_config

    cfg = make(precision="fp32", device="cuda:0")
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**architecture_config(cfg.model)))  # on the CPU
    be = PyTorchBackend.__new__(PyTorchBackend)
    be.config, be.device, be._world, be.load_warnings = cfg, "cuda:0", 1, []
    with pytest.raises(RuntimeError, match=r"parameters are on cpu \(\d+\) instead of cuda:0"):
        be._check_placement(model)
    be.config = make(precision="fp32", device="cuda:0", pytorch={"device_map": "auto"})
    model.hf_device_map = {"model.embed_tokens": 0, "model.layers": "cpu", "lm_head": "disk"}
    be._check_placement(model)
    assert be.load_warnings and "offloaded part of the model to cpu and disk" in be.load_warnings[0]


def test_weights_bytes_count_what_torchao_stores_not_its_outer_dtype():
    """Real torchao int8 on the CPU (quantize_ directly; llem itself runs int8 on GPUs only): an
    H100 result reported torchao int8 weights at their bf16 size."""
    pytest.importorskip("torchao")
    from torchao.quantization import Int8WeightOnlyConfig, quantize_
    from transformers import AutoConfig, AutoModelForCausalLM

    from llem.models.sources import architecture_config

    cfg = make(precision="bf16", device="cpu")
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**architecture_config(cfg.model)), dtype=torch.bfloat16)
    be = PyTorchBackend.__new__(PyTorchBackend)
    be.config, be.device, be._world, be._rank, be.model = cfg, "cpu", 1, 0, model
    bf16 = be.memory()["weights_bytes"]
    assert bf16 == model.get_memory_footprint()  # plain tensors: the same as transformers' count
    quantize_(model, Int8WeightOnlyConfig())
    int8 = be.memory()["weights_bytes"]
    assert int8 < 0.8 * bf16 and model.get_memory_footprint() == bf16  # transformers still says bf16
