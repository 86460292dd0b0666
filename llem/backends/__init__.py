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


__all__ = ["Backend", "GenerationOutput", "backend_class"]
