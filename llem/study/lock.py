"""One process per study: an OS lock on ``<study>/.study.lock``, held for the study's life.

Two ``llem run --resume`` of one study started at the same moment must not both run its jobs
(on a GPU they would share the card and contaminate each other's numbers). A pid written into
the manifest cannot decide that: both processes read the manifest before either writes. The
kernel's ``flock`` can: exactly one process gets it, and it is released when that process ends,
however it ends (SIGKILL included), so a killed study never leaves a stale lock behind.

The lock file's content (pid, host, start time, command) only tells the process that did not
get the lock who holds it; the lock itself is the kernel's. The file is never deleted: a
process may hold it open, and deleting it would let a third process lock a new file of the
same name.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

from llem.errors import ConfigError

LOCK_NAME = ".study.lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; the manifest's owner record is the only guard there
    fcntl = None  # type: ignore[assignment]

# study lock files this process holds: resolved path -> (fd, depth)
_HELD: dict[str, list[int]] = {}
# errors that mean "this file system cannot lock" (Lustre without -o flock, some NFS setups)
_NO_LOCKING = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


class StudyBusyError(ConfigError):
    """Another process runs this study."""


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _holder_text(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def describe_holder(text: str) -> str:
    """'pid 123 on host h since 2026-12-07T10:00:00+00:00 (llem run -m batch=1,8)' from the lock
    file's content."""
    try:
        info = json.loads(text)
    except ValueError:
        return "another process"
    parts = [f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"]
    if info.get("since"):
        parts.append(f"since {info['since']}")
    out = " ".join(parts)
    if info.get("command"):
        out += f" ({info['command'][:120]})"
    return out


class StudyLock:
    """``with StudyLock(study_dir, what="--resume DIR"):`` the study is this process's.

    Re-entrant within one process (the CLI takes it before its checks; the engine takes it
    again when Hydra starts the sweep). Raises ``StudyBusyError`` (exit 2, one line naming the
    holder) when another process holds it, ``ConfigError`` when the directory is unwritable.
    """

    def __init__(self, study_dir: str | Path, *, what: Optional[str] = None) -> None:
        self.dir = Path(study_dir).resolve()
        self.path = self.dir / LOCK_NAME
        self.what = what or str(self.dir)
        self.locked = False  # False where the file system cannot lock (a warning was printed)

    def _key(self) -> str:
        return str(self.path)

    def acquire(self) -> "StudyLock":
        held = _HELD.get(self._key())
        if held is not None:
            held[1] += 1
            self.locked = True
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as err:
            raise unwritable(self.what, self.dir, err.strerror) from None
        if fcntl is None:
            _HELD[self._key()] = [fd, 1]
            return self
        # Retry for a moment before calling the study busy: a reader's shared-lock probe
        # (held_elsewhere) holds the file for microseconds, and the holder writes its details
        # right after it locks, so a busy answer waits until they can be named.
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                text = _holder_text(fd)
                waited_s = time.monotonic() - t0
                if (text and waited_s > 0.3) or waited_s > 10.0:
                    os.close(fd)
                    raise StudyBusyError(
                        f"{self.what}: the study is being run by {describe_holder(text)}; only one process "
                        f"may run a study at a time (it holds {self.path}): wait for it to end or stop it",
                        field="study_dir", value=str(self.dir), allowed="a study no other process is running"
                    ) from None
                time.sleep(0.02)
            except OSError as err:
                if err.errno not in _NO_LOCKING:
                    os.close(fd)
                    raise
                print(f"llem: warning: {self.dir} is on a file system without file locks ({err.strerror}): "
                      "llem cannot stop two processes from running this study at once", file=sys.stderr)
                _HELD[self._key()] = [fd, 1]
                return self
        self.locked = True
        _HELD[self._key()] = [fd, 1]
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now(),
                "command": " ".join(["llem", *sys.argv[1:]]) if sys.argv else None}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only its description is missing
        return self

    def release(self) -> None:
        held = _HELD.get(self._key())
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self._key()]
        fd = held[0]
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def unwritable(what: str, study_dir: Path, why: str) -> ConfigError:
    return ConfigError(f"{what}: cannot write in {study_dir} ({why}); the study's manifest and lock live there: "
                       "make it writable", field="study_dir", value=str(study_dir), allowed="a writable directory")


def held_here(study_dir: str | Path) -> bool:
    return str(Path(study_dir).resolve() / LOCK_NAME) in _HELD


def held_elsewhere(study_dir: str | Path) -> bool:
    """Whether another process holds the study's lock now (it is running the study)."""
    if fcntl is None or held_here(study_dir):
        return False
    path = Path(study_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return False
