"""torch's compile work, stamped and placed against the measured windows.

``torch._dynamo.callback`` runs registered callbacks when a compile starts and ends, for each of
its triggers: a dynamo compile (a new graph or a recompile after a guard failed), Triton
autotuning, and CUDA graph recording (``mode="reduce-overhead"``, which transformers uses for
its static cache). The callbacks run only when such work happens, never per call, so having
them registered costs a window nothing. A compile or a re-recording inside one arm's window is
a one-off stall of 0.1-30 s that an ABBA block cannot balance; this says whether one happened,
in which window, and for how long.

Used by ``gpu_validation.py`` in every run; ``place()`` is separate so that it can be checked
without a compiler.
"""
from __future__ import annotations

import time
from typing import Any, Optional


class CompileEvents:
    def __init__(self) -> None:
        self.edges: list[dict[str, Any]] = []
        self.reason: Optional[str] = None
        self._cb = None
        self.available = False  # stays true after close(): it says whether the run recorded
        try:
            import torch._dynamo.callback as cb

            cb.callback_handler.register_start_callback(self._start)
            cb.callback_handler.register_end_callback(self._end)
            self._cb, self.available = cb, True
        except Exception as err:  # an older torch without the hook: said, not guessed
            self.reason = f"torch._dynamo.callback unavailable: {type(err).__name__}: {err}"

    def _stamp(self, edge: str, args) -> None:
        trigger = getattr(getattr(args, "callback_trigger", None), "name", None)
        self.edges.append({"t": time.perf_counter(), "edge": edge, "trigger": (trigger or "unknown").lower(),
                           "compile_id": getattr(args, "compile_id", None)})

    # torch before 2.8 called the callbacks without arguments
    def _start(self, args=None) -> None:
        self._stamp("start", args)

    def _end(self, args=None) -> None:
        self._stamp("end", args)

    def close(self) -> None:
        if self._cb is not None:
            self._cb.callback_handler.remove_start_callback(self._start)
            self._cb.callback_handler.remove_end_callback(self._end)
            self._cb = None

    def describe(self, windows: list[tuple[str, float, float]]) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason, **place(self.edges, windows)}


def place(edges: list[dict[str, Any]], windows: list[tuple[str, float, float]]) -> dict[str, Any]:
    """Pairs each start with the next end of the same trigger and compile id, and names the
    windows ``(label, open, close)`` (perf_counter seconds) each span overlaps. Times in the
    result count from the first window's opening."""
    zero = min((w[1] for w in windows), default=0.0)
    spans: list[dict[str, Any]] = []
    open_: dict[tuple, list[float]] = {}
    for e in edges:
        key = (e["trigger"], e["compile_id"])
        if e["edge"] == "start":
            open_.setdefault(key, []).append(e["t"])
        elif open_.get(key):
            spans.append(_span(key, open_[key].pop(0), e["t"], windows, zero))
    for key, starts in open_.items():  # started and never ended (the run was cut short)
        spans.extend(_span(key, t, None, windows, zero) for t in starts)
    spans.sort(key=lambda s: s["start_s"])
    inside = [s for s in spans if s["windows"]]
    return {"spans": spans, "before_first_window": sum(s["start_s"] < 0 and not s["windows"] for s in spans),
            "in_windows": len(inside),
            "in_windows_s": sum(s["duration_s"] or 0.0 for s in inside),
            "windows_hit": sorted({w for s in inside for w in s["windows"]})}


def _span(key, t0: float, t1: Optional[float], windows, zero: float) -> dict[str, Any]:
    end = t1 if t1 is not None else float("inf")
    return {"trigger": key[0], "compile_id": key[1], "start_s": t0 - zero,
            "duration_s": None if t1 is None else t1 - t0,
            "windows": [label for label, a, b in windows if t0 < b and end > a]}
