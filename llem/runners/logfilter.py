"""What of a job's output reaches the terminal, and how much of it reaches the log.

Repeats: some libraries log the same line on every forward pass (bitsandbytes int8: "MatMul8bitLt:
inputs will be cast from torch.bfloat16 to float16 ..." once per layer per token), which grew one
H100 job's run.log to 13 MB. The records are still created, as in a bare run; the handlers only
stop writing a line after its first few copies and say at the end how many they left out.

Terminal: a single ``llem run`` prints llem's own progress and warnings; everything else a job
prints (torchao's missing-extension warnings, torch's ``_pytree`` deprecation lines, vLLM's
logging, tracebacks libraries log as warnings, ``print`` and ``warnings`` output, a venv worker's
output) goes to the job's ``run.log`` only. Third-party records at ERROR and above still show.
"""
from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

#: A venv worker writes llem's own records to the inherited file descriptor this names, as
#: ``<fd>,<lowest level>`` (the terminal of the ``llem run`` that started it).
CONSOLE_FD_ENV = "LLEM_CONSOLE_FD"
#: Loggers whose records are llem's own.
OWN_LOGGERS = ("llem", "hydra_plugins.llem_plugins")


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


class OwnRecords(logging.Filter):
    """Passes llem's own records at ``min_level`` and above, and anyone's at ERROR and above."""

    def __init__(self, min_level: int = logging.INFO) -> None:
        super().__init__()
        self.min_level = min_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        own = any(record.name == n or record.name.startswith(n + ".") for n in OWN_LOGGERS)
        return own and record.levelno >= self.min_level


_console: dict = {"fd": None, "level": logging.INFO}


def console_fd() -> Optional[int]:
    """The terminal's file descriptor while ``job_output_to_log`` holds it (for a venv worker)."""
    return _console["fd"]


def console_env() -> dict[str, str]:
    """What a worker process needs to write llem's records to the terminal (empty if none)."""
    fd = _console["fd"]
    return {} if fd is None else {CONSOLE_FD_ENV: f"{fd},{_console['level']}"}


def _is_console(handler: logging.Handler) -> bool:
    return (type(handler) is logging.StreamHandler
            and getattr(handler, "stream", None) in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


@contextmanager
def job_output_to_log(log_path: str | Path, *, quiet: bool = False) -> Iterator[int]:
    """For the job's duration, file descriptors 1 and 2 (so ``print``, ``warnings``, C libraries,
    handlers libraries made themselves, and child processes) write to ``log_path``; the root
    logger's console handlers write to the terminal, passing llem's own records only (``quiet``:
    its warnings only). Yields the terminal's descriptor (the console's stream, stdout)."""
    handlers = [h for h in logging.getLogger().handlers if _is_console(h)]
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                         errors="backslashreplace")
    log_fd = os.open(str(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    own = OwnRecords(logging.WARNING if quiet else logging.INFO)
    # llem's console lines went to stdout under Hydra's logging config; they keep that stream
    out_terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding=getattr(sys.stdout, "encoding", None) or "utf-8",
                             errors="backslashreplace")
    old = [(h, h.stream) for h in handlers]
    for h in handlers:
        h.setStream(out_terminal if h.stream in (sys.stdout, sys.__stdout__) else terminal)
        h.addFilter(own)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    _console["fd"], _console["level"] = out_terminal.fileno(), own.min_level
    try:
        yield out_terminal.fileno()
    finally:
        _console["fd"] = None
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        for h, stream in old:
            h.removeFilter(own)
            h.setStream(stream)
        terminal.close()
        out_terminal.close()


def add_console_from_env() -> None:
    """In a venv worker: llem's own records also go to the terminal descriptor its parent passed
    (``LLEM_CONSOLE_FD``); everything else stays on its stderr, the job's log."""
    fd, _, level = os.environ.get(CONSOLE_FD_ENV, "").partition(",")
    if not fd.isdigit():
        return
    try:
        stream = os.fdopen(int(fd), "w", buffering=1, errors="backslashreplace")
    except OSError:
        return  # not inherited (started by hand): the log has everything
    h = logging.StreamHandler(stream)
    h.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    h.addFilter(OwnRecords(int(level) if level.isdigit() else logging.INFO))
    logging.getLogger().addHandler(h)
