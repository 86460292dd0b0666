"""The ``pytorch:`` section's fields against the calls they reach, and the checks on them that
need no torch: they run when an ``ExperimentConfig`` is validated, before anything loads.
``llem.backends.pytorch`` builds its ``from_pretrained``/``generate`` arguments from the same tables.
"""
from __future__ import annotations

# typed field -> the call it reaches (used by the coverage tests and the docs)
TYPED_LOAD = ("attn_implementation", "device_map", "max_memory", "low_cpu_mem_usage", "trust_remote_code")
TYPED_GENERATE = ("cache_implementation", "use_cache", "do_sample", "temperature", "top_k", "top_p", "min_p",
                  "typical_p", "epsilon_cutoff", "eta_cutoff", "repetition_penalty",
                  "num_beams", "length_penalty", "early_stopping", "prompt_lookup_num_tokens")
SAMPLING_ONLY = ("top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")
# keys llem sets from its own fields: refused in the passthrough dicts
LOAD_CONTROLLED = {"dtype": "precision", "torch_dtype": "precision", "quantization_config": "precision (int8/int4)",
                   "gguf_file": "model.gguf_file", "revision": "model.revision",
                   "pretrained_model_name_or_path": "model.path", "tp_plan": "pytorch.tp_plan",
                   "tp_size": "pytorch.tp_size", "distributed_config": "pytorch.tp_plan/tp_size"}
GENERATE_CONTROLLED = {"max_new_tokens": "output_len", "min_new_tokens": "output_len",
                       "max_length": "output_len (fixed new tokens)", "min_length": "output_len (fixed new tokens)",
                       "streamer": "llem's timing hook"}


def check_passthrough(pt) -> None:
    """Refuse passthrough keys that duplicate a typed field or one llem controls (ValueError,
    which config validation turns into a one-line ConfigError)."""
    for section, typed, controlled in (("extra_load_kwargs", TYPED_LOAD, LOAD_CONTROLLED),
                                       ("extra_generate_kwargs", TYPED_GENERATE, GENERATE_CONTROLLED)):
        for key in getattr(pt, section):
            if key in typed:
                raise ValueError(f"pytorch.{section}.{key} duplicates a typed field; set pytorch.{key} instead")
            if key in controlled:
                raise ValueError(f"pytorch.{section}.{key} is set by llem from {controlled[key]}; "
                                 f"allowed: any other {section.split('_')[1]} keyword")
            if key in ("torch_compile", "torch_compile_mode", "tp_plan", "tp_size", "quantization"):
                raise ValueError(f"pytorch.{section}.{key}: set pytorch.{key} instead")


def cross_check(cfg) -> None:
    """Combinations that cannot run, whatever the machine (ValueError -> ConfigError)."""
    pt = cfg.pytorch
    if cfg.precision in ("int8", "int4") and cfg.device == "cpu":
        raise ValueError(f"precision={cfg.precision} with device=cpu is not supported (int8/int4 need a CUDA GPU "
                         "with bitsandbytes or torchao); allowed on cpu: fp32, fp16, bf16")
    if cfg.precision in ("int8", "int4") and cfg.runner.pytorch == "local":
        import importlib.util

        # the job runs in this Python: a missing library is known now, before any directory exists
        if not any(importlib.util.find_spec(lib) for lib in ("bitsandbytes", "torchao")):
            raise ValueError(f"precision={cfg.precision} needs bitsandbytes or torchao in this Python "
                             "(pip install bitsandbytes) and a CUDA GPU; allowed without them: fp32, fp16, bf16")
    if not pt.do_sample:
        for k in SAMPLING_ONLY:
            if getattr(pt, k) is not None:
                raise ValueError(f"pytorch.{k}={getattr(pt, k)!r} has no effect with pytorch.do_sample=false; "
                                 "allowed: set pytorch.do_sample=true or leave it null")
        if pt.temperature != 1.0:
            raise ValueError(f"pytorch.temperature={pt.temperature} has no effect with pytorch.do_sample=false; "
                             "allowed: 1.0, or set pytorch.do_sample=true")
    elif pt.temperature == 0:
        raise ValueError("pytorch.temperature=0 with do_sample=true; allowed: > 0 (or do_sample=false for greedy)")
    if pt.torch_compile_mode and not pt.torch_compile:
        raise ValueError(f"pytorch.torch_compile_mode={pt.torch_compile_mode!r} needs pytorch.torch_compile=true")
    if pt.tp_plan and cfg.model.source == "gguf":
        raise ValueError("pytorch.tp_plan=auto with model.source=gguf is not supported; allowed: local, hub, builtin, no_weights")
    if pt.tp_plan and cfg.precision in ("int8", "int4"):
        raise ValueError(f"pytorch.tp_plan=auto with precision={cfg.precision} is not supported; allowed: fp32, fp16, bf16")
