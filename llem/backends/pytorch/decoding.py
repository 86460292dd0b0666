"""Decoding parameters and passthrough: the keyword arguments every ``model.generate`` call gets
(fixed output length, the typed decoding fields, then ``extra_generate_kwargs``), and the one
static KV cache per batch size that a job reuses across calls (``pytorch.reuse_static_cache``).

Which keys are typed, which llem controls and the checks on them live beside the schema
(``llem.config.pytorch_options``), so a bad config fails before torch is imported.
One concern of ``PyTorchBackend`` (``backend.py``): the mixin shares the backend's state.
"""
from __future__ import annotations

from typing import Any, Optional

from llem.config.pytorch_options import TYPED_GENERATE


def cache_kwarg(model) -> str:
    """The name under which this transformers' ``generate`` takes a ready cache object: it renamed
    ``past_key_values`` to ``cache`` (the old name still works there, with a warning)."""
    import inspect

    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def static_cache_len(width: int, output_len: int) -> int:
    """transformers' own static-cache length for a prompt width (max_length - 1: the last token
    is never attended to). A longer cache is another shape, and compiled decoding recompiles."""
    return width + output_len - 1


def new_static_cache(model, width: int, output_len: int) -> Any:
    from transformers import StaticCache

    return StaticCache(config=model.config.get_text_config(decoder=True),
                       max_cache_len=static_cache_len(width, output_len))


class DecodingMixin:
    """PyTorchBackend's ``generate`` keyword arguments and reused static cache."""

    def generate_kwargs(self) -> dict[str, Any]:
        pt = self.config.pytorch
        n = self.config.output_len
        kw: dict[str, Any] = {
            "max_new_tokens": n,
            "min_new_tokens": n,  # fixed output length: random weights emit EOS early
            "do_sample": pt.do_sample,
            "num_beams": pt.num_beams,
            "use_cache": pt.use_cache,
        }
        if pt.do_sample:
            kw["temperature"] = pt.temperature
        for k in TYPED_GENERATE:
            v = getattr(pt, k)
            if k not in kw and k != "temperature" and v is not None:
                kw[k] = v
        if getattr(self, "pad_id", None) is not None:
            kw["pad_token_id"] = self.pad_id
        kw.update(pt.extra_generate_kwargs)
        return kw

    def _shared_static_cache_kwarg(self, model) -> Optional[str]:
        """The generate kwarg that takes llem's own static cache, or None where transformers keeps
        building one per call. A new cache per call lands at new addresses, and the static-address
        KV tensors are CUDA-graph inputs: compiled decoding re-records its graphs (11-24 ms each on an H100)
        whenever the addresses are new, in measured windows too. One cache, reset before each
        call, keeps them fixed. Only for plain static caching on one process: beams and extra
        return sequences size the cache differently, and tensor-parallel ranks shard it."""
        pt = self.config.pytorch
        if not (pt.reuse_static_cache and pt.cache_implementation == "static" and pt.use_cache
                and pt.num_beams == 1 and self._world == 1
                and pt.extra_generate_kwargs.get("num_return_sequences", 1) == 1):
            return None
        return cache_kwarg(model)

    def _static_cache(self, rows: int) -> Any:
        """This row count's cache, reset (the zeroing a fresh cache does too), or a new one when
        none is long enough: sized for the longest prepared batch, so one per job."""
        have = self._static_caches.get(rows)
        if have is not None and have[0] >= self._widest:
            have[1].reset()
            return have[1]
        cache = new_static_cache(self.model, self._widest, self.config.output_len)
        self._static_caches[rows] = (self._widest, cache)
        return cache
