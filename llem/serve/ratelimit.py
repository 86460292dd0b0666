"""A token bucket per user for uploads: ``rate`` per minute, bursts of up to ``rate``."""
from __future__ import annotations

import math
import threading
import time
from typing import Callable


class RateLimiter:
    def __init__(self, rate_per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_min / 60.0
        self.capacity = float(rate_per_min)
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: int) -> float:
        """0.0 when ``key`` may go ahead (one token taken), else the seconds until it may."""
        if self.capacity <= 0:
            return 0.0  # rate 0: no limit
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return math.ceil((1.0 - tokens) / self.rate_per_s)
