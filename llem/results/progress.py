"""Progress for long operations (loading many jobs, drawing many figures), on stderr.

On a terminal one line is rewritten in place; in a log file a line is written at most every
10% so that CI logs stay short. ``quiet`` silences it entirely; results go to stdout, so
progress never mixes into a table being piped somewhere.
"""
from __future__ import annotations

import sys
from typing import Optional, TextIO


class Progress:
    def __init__(self, label: str, *, quiet: bool = False, stream: Optional[TextIO] = None,
                 min_total: int = 2) -> None:
        self.label = label
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.min_total = min_total
        self._last_decile = -1
        self._open_line = False

    @property
    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int, item: str = "") -> None:
        if self.quiet or total < self.min_total:
            return
        msg = f"llem: {self.label} {done}/{total}" + (f" {item}" if item else "")
        if self._tty:
            self.stream.write("\r\033[K" + msg)
            self._open_line = True
            if done >= total:
                self.stream.write("\n")
                self._open_line = False
        else:
            decile = (10 * done) // total
            if decile != self._last_decile or done >= total:
                self._last_decile = decile
                self.stream.write(msg + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A message that must be seen even among progress lines (a skipped figure, say)."""
        if self.quiet:
            return
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(f"llem: {message}\n")
        self.stream.flush()
