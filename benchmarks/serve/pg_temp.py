"""A throwaway PostgreSQL server on loopback, for the server's tests and its load benchmark.

    with TempPostgres() as pg:            # initdb into a temporary folder, pg_ctl start
        url = pg.create_database("x")     # postgresql+psycopg://llem@127.0.0.1:PORT/x

It uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<v>/bin``),
else ``pg_config --bindir``, else ``initdb`` on PATH. PostgreSQL refuses to run as root: as root the
cluster belongs to the ``postgres`` user the package creates and every command runs through
``runuser -u postgres``. Durability is switched off (``fsync=off``): the data is thrown away.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Optional


def find_bin_dir() -> Optional[Path]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
                   if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").is_file():
            return Path(out.stdout.strip())
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    USER = "llem"

    def __init__(self, bin_dir: Optional[Path] = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        if self.bin_dir is None:
            raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
        self.base: Optional[Path] = None
        self.port: Optional[int] = None
        self._as: list[str] = []

    def _run(self, *cmd: str) -> None:
        out = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")

    def start(self) -> "TempPostgres":
        self.base = Path(tempfile.mkdtemp(prefix="llem-pg-"))
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root needs the 'postgres' user (Debian's postgresql package "
                                   "creates it)") from None
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        data = self.base / "data"
        self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", self.USER, "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        self.port = free_port()
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.base / "server.log"), "-w",
                  "-t", "60", "-o", opts, "start")
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, template: Optional[str] = None) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open to it (each is a full copy on disk)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.base is None:
            return
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> "TempPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
