"""Collapse repeated log records in a job's logs.

Some libraries log the same line on every forward pass (bitsandbytes int8: "MatMul8bitLt: inputs
will be cast from torch.bfloat16 to float16 ..." once per layer per token), which grew one H100
job's run.log to 13 MB. The records are still created, as in a bare run; the handlers only stop
writing a line after its first few copies and say at the end how many they left out.
"""
from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from typing import Iterator


class RepeatFilter(logging.Filter):
    """Passes each distinct (logger, level, message) ``limit`` times, then counts it."""

    def __init__(self, limit: int = 3) -> None:
        super().__init__()
        self.limit = limit
        self.seen: Counter = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        self.seen[key] += 1
        return self.seen[key] <= self.limit

    def suppressed(self) -> dict[tuple, int]:
        return {k: n - self.limit for k, n in self.seen.items() if n > self.limit}


@contextmanager
def collapse_repeats(limit: int = 3) -> Iterator[list[RepeatFilter]]:
    """On every root handler (one filter each: a filter sees a record once per handler) for the
    duration; afterwards one line per collapsed message."""
    handlers = list(logging.getLogger().handlers)
    filters = [RepeatFilter(limit) for _ in handlers]
    for h, f in zip(handlers, filters):
        h.addFilter(f)
    try:
        yield filters
    finally:
        for h, f in zip(handlers, filters):
            h.removeFilter(f)
        left_out: dict[tuple, int] = {}
        for f in filters:
            for k, n in f.suppressed().items():
                left_out[k] = max(n, left_out.get(k, 0))
        log = logging.getLogger("llem")
        for (name, _, msg), n in sorted(left_out.items(), key=lambda kv: -kv[1]):
            log.warning("%d more log records from %s like this one were not written: %s", n, name, msg[:200])
