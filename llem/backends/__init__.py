"""Inference backends: one module per backend, behind ``Backend`` in base.py."""
from __future__ import annotations

from llem.backends.base import Backend, GenerationOutput

_REGISTRY = {
    "pytorch": "llem.backends.pytorch:PyTorchBackend",
    "vllm": "llem.backends.vllm:VLLMBackend",
    "tensorrt": "llem.backends.tensorrt:TensorRTBackend",
}


def backend_class(name: str) -> type[Backend]:
    import importlib

    mod, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(mod), cls)


def check_runs_here(config) -> None:
    """Refuse (``ConfigError``) a config this machine's hardware cannot run, for a job that will
    run here: the backend's own check, with the device detection its preflight uses."""
    import importlib

    mod = importlib.import_module(_REGISTRY[config.backend].partition(":")[0])
    check = getattr(mod, "check_runs_here", None)
    if check is not None:
        check(config)


__all__ = ["Backend", "GenerationOutput", "backend_class", "check_runs_here"]
