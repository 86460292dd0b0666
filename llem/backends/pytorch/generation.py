"""Generation: prompts padded into batches on the model's device (prepared before any window),
``generate`` with a fixed output length, the prefill-only call of the phase split, per-token
timestamps for the latency pass, and device synchronisation for the meter's window edges.

One concern of ``PyTorchBackend`` (``backend.py``): the mixin shares the backend's state.
"""
from __future__ import annotations

import time
from typing import Any

from llem.backends.base import GenerationOutput, PreparedBatch


class _TimingStreamer:
    """Records a perf_counter() timestamp each time generate hands over a step's new tokens.

    transformers calls ``put(next_tokens.cpu())``: the copy waits for the device, so the
    timestamp marks when the step's tokens existed on the host. The first ``put`` carries
    the prompt and is skipped. With static batching every row of a batch gets its token in
    the same step, so one list of times serves all rows.
    """

    __slots__ = ("times", "_seen_prompt")

    def __init__(self) -> None:
        self.times: list[float] = []
        self._seen_prompt = False

    def put(self, value) -> None:
        if self._seen_prompt:
            self.times.append(time.perf_counter())
        else:
            self._seen_prompt = True

    def end(self) -> None:
        pass


class GenerationMixin:
    """PyTorchBackend's prepare/generate/prefill/synchronize."""

    def _prepare_local(self, prompts: list[list[int]]) -> PreparedBatch:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding, as decoder-only generation needs
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        dev = self.model.device if hasattr(self.model, "device") else self.device
        payload = {"input_ids": ids.to(dev), "attention_mask": mask.to(dev)}
        self._widest = max(self._widest, width)
        return PreparedBatch(prompts=prompts, payload=payload, input_tokens=sum(len(p) for p in prompts))

    def prepare(self, prompts: list[list[int]]) -> PreparedBatch:
        if self._world > 1:
            self._tp_in_sync = False
            self._broadcast(("prepare", prompts))
            self._tp_in_sync = True
            b = self._prepare_local(prompts)
            b.extra["tp_index"] = len(self._batches)
            self._batches.append(b)
            return b
        return self._prepare_local(prompts)

    def _generate(self, batch: PreparedBatch, kwargs: dict[str, Any], timing: bool) -> GenerationOutput:
        import torch

        if self._world > 1 and self._rank == 0:
            self._tp_in_sync = False
            self._broadcast(("generate", (batch.extra["tp_index"],
                                          "prefill" if kwargs["max_new_tokens"] == 1 else "full")))
        streamer = _TimingStreamer() if timing else None
        if streamer is not None:
            kwargs = dict(kwargs, streamer=streamer)
        start = time.perf_counter()
        with torch.inference_mode():
            if self._cache_kwarg:
                kwargs = dict(kwargs, **{self._cache_kwarg: self._static_cache(batch.payload["input_ids"].shape[0])})
            out = self.model.generate(**batch.payload, **kwargs)
        end = time.perf_counter()
        self._tp_in_sync = True
        self.last_output_ids = out  # a reference, not a copy: lets tests compare tokens
        n_in = batch.payload["input_ids"].shape[1]
        rows = int(out.shape[0])
        new = int(out.shape[1] - n_in)
        return GenerationOutput(
            input_tokens=batch.input_tokens, output_tokens=new * rows, num_requests=rows,
            token_times=[list(streamer.times) for _ in range(rows)] if streamer else None,
            start_time=start, end_time=end,
        )

    def generate(self, batch: PreparedBatch, *, timing: bool = False) -> GenerationOutput:
        if timing and self.config.pytorch.num_beams > 1:
            raise NotImplementedError("transformers streamers do not support beam search (num_beams > 1)")
        return self._generate(batch, self._generate_kw, timing)

    def prefill(self, batch: PreparedBatch) -> GenerationOutput:
        return self._generate(batch, self._prefill_kw, False)

    def decode_text(self, ids) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def sample_text(self, prompt: str, max_new_tokens: int = 24) -> str:
        """Greedy continuation of one prompt (for humans checking a real model writes sense)."""
        import torch

        enc = self.tokenizer(prompt, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.pad_id)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def synchronize(self) -> None:
        import torch

        if torch.cuda.is_available() and str(self.device).startswith("cuda"):
            for i in self.devices_used() if self._world == 1 else [self._rank]:
                torch.cuda.synchronize(i)
