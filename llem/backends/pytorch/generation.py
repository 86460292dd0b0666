"""Generation: prompts padded into batches on the model's device (prepared before any window),
``generate`` with a fixed output length, the prefill-only call of the phase split, per-token
timestamps for the latency pass (a CUDA event per decoding step, no per-token host
synchronisation), and device synchronisation for the meter's window edges.

One concern of ``PyTorchBackend`` (``backend.py``): the mixin shares the backend's state.
"""
from __future__ import annotations

import time
from typing import Any

from llem.backends.base import GenerationOutput, PreparedBatch


class _StepClock:
    """Timestamps each decoding step without adding a host synchronisation: a stopping criterion
    that never stops (transformers calls every criterion once per step, after the step's tokens
    are chosen, with the tokens so far still on the device).

    On CUDA it records a preallocated CUDA event on the current stream (no wait); the events are
    read once, after the call, and placed on the host's clock by the start event recorded when
    the device was idle (the harness synchronises before every timed call). Elsewhere (CPU)
    the step has already run when the criterion is called, so ``perf_counter()`` is its time.
    A transformers streamer would instead copy every step's tokens to the host
    (``put(tokens.cpu())``), a device synchronisation per token.

    With static batching every row of a batch gets its tokens in the same step, so one list of
    times serves all rows; a step that adds several tokens (prompt lookup) stamps each of them.
    """

    def __init__(self, steps: int, device) -> None:
        import torch

        self.device = device
        self.cuda = getattr(device, "type", str(device)).startswith("cuda") and torch.cuda.is_available()
        self.lengths: list[int] = []
        self.host_times: list[float] = []
        self.events: list = []
        self._false = None
        if self.cuda:
            self.stream = torch.cuda.current_stream(device)
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
            self.start_event = torch.cuda.Event(enable_timing=True)

    def start(self) -> float:
        """Mark the call's start; returns it on the host's clock."""
        if self.cuda:
            self.start_event.record(self.stream)
        return time.perf_counter()

    def __call__(self, input_ids, scores=None, **kwargs):
        k = len(self.lengths)
        self.lengths.append(input_ids.shape[-1])  # host metadata: no synchronisation
        if self.cuda:
            if k >= len(self.events):  # more steps than planned (never with a fixed output length)
                import torch

                self.events.append(torch.cuda.Event(enable_timing=True))
            self.events[k].record(self.stream)
        else:
            self.host_times.append(time.perf_counter())
        if self._false is None or self._false.shape[0] != input_ids.shape[0]:
            import torch

            self._false = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return self._false

    def token_times(self, start: float, prompt_len: int) -> list[float]:
        """One time per generated token (host clock), after the call; synchronises once."""
        if self.cuda:
            self.events[len(self.lengths) - 1].synchronize()
            step_times = [start + self.start_event.elapsed_time(e) / 1e3 for e in self.events[:len(self.lengths)]]
        else:
            step_times = self.host_times
        times: list[float] = []
        prev = prompt_len
        for t, n in zip(step_times, self.lengths):
            times.extend([t] * max(0, n - prev))
            prev = n
        return times


def _as_stopping_criterion(clock: "_StepClock"):
    """The clock as a transformers ``StoppingCriteria`` (imported here: transformers loads lazily)."""
    from transformers import StoppingCriteria

    class StepClockCriterion(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return clock(input_ids, scores)

    return StepClockCriterion()


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
        clock = None
        if timing:
            from transformers import StoppingCriteriaList

            ids = batch.payload["input_ids"]
            clock = _StepClock(int(kwargs.get("max_new_tokens") or self.config.output_len), ids.device)
            extra = list(kwargs.get("stopping_criteria") or [])
            kwargs = dict(kwargs, stopping_criteria=StoppingCriteriaList([*extra, _as_stopping_criterion(clock)]))
            self.latency_path = ("a CUDA event recorded after each decoding step by a stopping criterion that never "
                                 "stops, read once after the call (no per-token host synchronisation)" if clock.cuda
                                 else "host perf_counter() after each decoding step, taken by a stopping criterion "
                                      "that never stops (on the CPU the step has run when it is stamped)")
        start = clock.start() if clock is not None else time.perf_counter()
        with torch.inference_mode():
            if self._cache_kwarg:
                kwargs = dict(kwargs, **{self._cache_kwarg: self._static_cache(batch.payload["input_ids"].shape[0])})
            out = self.model.generate(**batch.payload, **kwargs)
        token_times = None
        if clock is not None:
            # outside the decoding loop: one wait for the device, so end_time is when it finished
            token_times = clock.token_times(start, int(batch.payload["input_ids"].shape[1]))
            self.synchronize()
        end = time.perf_counter()
        self._tp_in_sync = True
        self.last_output_ids = out  # a reference, not a copy: lets tests compare tokens
        n_in = batch.payload["input_ids"].shape[1]
        rows = int(out.shape[0])
        new = int(out.shape[1] - n_in)
        return GenerationOutput(
            input_tokens=batch.input_tokens, output_tokens=new * rows, num_requests=rows,
            token_times=[list(token_times) for _ in range(rows)] if token_times is not None else None,
            start_time=start, end_time=end,
        )

    def generate(self, batch: PreparedBatch, *, timing: bool = False) -> GenerationOutput:
        if timing and self.config.pytorch.num_beams > 1:
            # beam search reorders its beams every step: a step's time is not one request's token time
            raise NotImplementedError("per-token timing is not implemented for beam search (num_beams > 1)")
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
