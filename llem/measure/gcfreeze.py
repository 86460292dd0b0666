"""Python's garbage collector, kept from walking the whole heap inside measured windows.

A collection of the oldest generation walks every object the collector tracks. After torch,
transformers and a model load that is several hundred thousand objects (422k for the tiny CPU
model), and more after ``torch.compile``; one such walk took 0.2 s on a 2-core CI-class VM, and
the H100 runs' sampler saw 0.3-0.5 s stalls inside batch-1 windows (docs/validation/README.md).
When it lands in a window, at small batch where ``generate`` is bound by the host, the window
is that much slower for a reason that has nothing to do with inference.

So with ``measurement.gc_freeze`` (default on), after warm-up and window sizing and before the
first measured window, llem collects once and freezes what survives (``gc.freeze``: those
objects move to a permanent generation that later collections skip), as vLLM does after its own
warm-up. Collections still run inside windows, over the objects created since. The heap is
unfrozen when the experiment's passes are over, unless the process had frozen it before llem
did (``gc.unfreeze`` cannot tell whose objects are whose, so a caller's freeze is left alone).
Collection counts per generation over the measured cycles are recorded either way, read before
the first and after the last window.
"""
from __future__ import annotations

import gc
import time

_frozen_by_llem = False


def _collections() -> list[int]:
    return [s["collections"] for s in gc.get_stats()]


class FrozenHeap:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.collect_s: float | None = None
        self.frozen_objects: int | None = None
        self.frozen_before: int | None = None
        self._start: list[int] | None = None
        self._end: list[int] | None = None
        # frozen-object counts of the backend's other processes (tensor-parallel followers)
        self.workers: list[int] | None = None

    def freeze(self) -> None:
        """Collect and freeze (when enabled); either way, start counting collections."""
        global _frozen_by_llem
        if self.enabled:
            self.frozen_before = gc.get_freeze_count()
            t = time.perf_counter()
            gc.collect()
            self.collect_s = time.perf_counter() - t
            gc.freeze()
            _frozen_by_llem = not self.frozen_before
            self.frozen_objects = gc.get_freeze_count()
        self._start = _collections()

    def mark_end(self) -> None:
        """After the last measured window has closed."""
        self._end = _collections()

    def describe(self) -> dict:
        during = None
        if self._start is not None and self._end is not None:
            during = {f"gen{g}": b - a for g, (a, b) in enumerate(zip(self._start, self._end))}
        return {"gc_freeze": self.enabled, "frozen_objects": self.frozen_objects,
                "frozen_before_llem": self.frozen_before, "workers_frozen_objects": self.workers,
                "collect_before_freeze_s": self.collect_s, "collections_during_measured_cycles": during}


def release() -> None:
    """Unfreeze what llem froze; a no-op otherwise, so safe to call on every exit path."""
    global _frozen_by_llem
    if _frozen_by_llem:
        gc.unfreeze()
        _frozen_by_llem = False
