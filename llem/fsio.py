"""Atomic file output: every file llem writes for people to read goes through here.

A file is written under a temporary name beside its destination and renamed onto it, so a
reader (or a killed writer) never leaves half a file. The temporary file is created with mode
0o666, so the kernel applies the process umask (and any default ACL of the directory) exactly
as it does for a plain ``open(path, "w")``: with umask 022 colleagues can read the results,
with 027 only the group can. ``tempfile.mkstemp`` would create it 0600 whatever the umask,
and the rename would carry that mode onto ``result.json``, ``manifest.json``, PNGs and exports.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

#: the suffix of every temporary file; a stale one (its writer was killed) matches
#: ``.<name>.*.tmp`` beside ``<name>``
TMP_SUFFIX = ".tmp"


def _create_temp(path: Path) -> tuple[int, Path]:
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        try:
            # 0o666 & ~umask, as open() gives; O_EXCL: never another writer's file
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)``: on success ``tmp`` is renamed onto ``p``;
    on any error (or Ctrl-C) it is removed and ``p`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_file_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` (a library that writes by file name: pandas, matplotlib) and
    rename the result onto ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` durably (fsync before the rename) and atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(directory: str | Path, name: str) -> list[Path]:
    """Remove ``.<name>.*.tmp`` left in ``directory`` by a writer that was killed mid-write.

    Call it only while no other process may be writing ``name`` there (under the lock that
    guards it)."""
    removed = []
    for p in Path(directory).glob(f".{name}.*{TMP_SUFFIX}"):
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed
