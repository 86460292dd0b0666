"""Meter windows around the evaluation's model calls.

lm-eval's ``evaluate`` builds every request of a task first, then hands each request type to the
model in one call (``lm.loglikelihood(requests)``, ``lm.generate_until(requests)``, ...), then
scores the answers. llem opens one meter window around each such call (device synchronised at
both edges, as for the measured cycles), so the evaluation's energy is the energy of the model
work: dataset loading, prompt building and scoring happen outside the windows, on the host.
The windows come after the measured cycles and never overlap them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")


@dataclass
class Window:
    request_type: str
    requests: int
    reading: Any  # llem.meters.base.WindowReading


@dataclass
class Recorder:
    """Every window of one task's evaluation, in order."""

    windows: list[Window] = field(default_factory=list)

    def reset(self) -> None:
        self.windows.clear()

    @property
    def duration_s(self) -> float:
        return sum(w.reading.duration_s for w in self.windows)

    def requests(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.windows:
            out[w.request_type] = out.get(w.request_type, 0) + w.requests
        return out


def instrument(lm, meter, synchronize: Callable[[], None], recorder: Optional[Recorder] = None) -> Recorder:
    """Wrap ``lm``'s request methods (on the instance: lm-eval calls them by name) in meter windows."""
    rec = recorder or Recorder()
    for name in REQUEST_TYPES:
        method = getattr(lm, name, None)
        if method is None:
            continue

        try:
            quiet = "disable_tqdm" in inspect.signature(method).parameters
        except (TypeError, ValueError):
            quiet = False

        def metered(requests, *args, _name=name, _method=method, _quiet=quiet, **kwargs):
            if _quiet:
                kwargs.setdefault("disable_tqdm", True)  # lm-eval's models otherwise force their bars on
            synchronize()
            h = meter.begin()
            try:
                out = _method(requests, *args, **kwargs)
                synchronize()
            finally:
                # a failed call still closes its window, so the meter is left clean for the next task
                reading = meter.end(h)
                rec.windows.append(Window(_name, len(requests), reading))
            return out

        setattr(lm, name, metered)
    return rec

