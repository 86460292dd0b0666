"""``llem results site``: a static leaderboard site, the prebuilt front end beside exported data.

The front end (``web/``, React + Vite) is built by ``scripts/build-web.sh`` into
``llem/assets/site/`` and ships inside the package, so a user needs no Node.js: this module copies
those files into the site directory and exports each study with the leaderboard export
(``llem/results/leaderboard.py``, job files included) into ``<site>/data/``. The page reads
``data/index.json`` (its ``<meta name="llem-data-url">``), so the folder can be served by any
static file server. :func:`serve` is such a server, bound to 127.0.0.1.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional

from llem.errors import ConfigError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "site"
DATA_DIR = "data"
# what a site directory holds besides data/: the page and its hashed script and style files
SITE_FILES = ("index.html", "assets")


@dataclass
class SiteInfo:
    out: Path
    index: Path
    studies: list[Path]


def assets_dir() -> Path:
    """The prebuilt front end shipped in the package."""
    if not (ASSETS / "index.html").is_file():
        raise ConfigError(f"site: this llem installation has no prebuilt front end ({ASSETS} lacks index.html); "
                          "reinstall llem, or build it from a clone with scripts/build-web.sh",
                          field="site", value=str(ASSETS), allowed="an llem package with llem/assets/site")
    return ASSETS


def _is_site(out: Path) -> bool:
    idx = out / DATA_DIR / "index.json"
    try:
        return idx.is_file() and json.loads(idx.read_text()).get("schema") == "llem.leaderboard.index"
    except (OSError, ValueError):
        return False


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty directory that is not an llem site
    (its files would be mixed with the site's): exit 2 before anything is written."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {str(out)!r} is a file; allowed: a new or empty directory, or an llem site",
                          field="out", value=str(out), allowed="a directory")
    if out.is_dir() and any(out.iterdir()) and not _is_site(out):
        raise ConfigError(f"--out: {str(out)!r} holds other files and no llem site (data/index.json); allowed: a new "
                          "or empty directory, or a site an earlier `llem results site` wrote (its studies are kept)",
                          field="out", value=str(out), allowed="a new or empty directory, or an llem site")


def build_site(paths: list[str], out: str | Path, *, load: Callable, quiet: bool = False) -> SiteInfo:
    """Export every study of ``paths`` into ``out/data`` and copy the front end into ``out``.

    ``load(path)`` returns ``(LoadedResults, DataFrame)``. Every path is read before anything is
    written, so a bad one (exit 2) leaves ``out`` as it was. Exporting into an existing site adds the
    studies to it (a study exported again replaces its earlier version)."""
    from llem.results.leaderboard import study_slug, write_leaderboard

    out = Path(out)
    check_out(out)
    src = assets_dir()
    loaded_all = []
    seen: dict[str, str] = {}
    for p in paths:
        loaded, df = load(p)
        study = loaded.study
        sid = study_slug(loaded.label, study.study_design_hash if study is not None else None)
        if sid in seen and Path(seen[sid]).resolve() != Path(p).resolve():
            raise ConfigError(f"DIR: {p!r} and {seen[sid]!r} would both be study {sid!r} on the site (same name and "
                              "design); allowed: studies with different names (hydra.sweeper.study_name) or designs",
                              field="DIR", value=p, allowed="studies with distinct ids")
        if sid not in seen:
            seen[sid] = p
            loaded_all.append((loaded, df))
    # the front end: index.html and assets/ replaced whole (hashed file names change between builds)
    out.mkdir(parents=True, exist_ok=True)
    for name in SITE_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        s = src / name
        if s.is_dir():
            shutil.copytree(s, target)
        else:
            shutil.copyfile(s, target)
    studies = []
    index = out / DATA_DIR / "index.json"
    for loaded, df in loaded_all:
        study = loaded.study
        meta = {}
        if study is not None:
            meta = {"created_at": study.created_at, "finished_at": study.finished_at,
                    "llem_version": study.llem_version}
        sp, index = write_leaderboard(df, out / DATA_DIR, name=loaded.label,
                                      design_hash=study.study_design_hash if study is not None else None,
                                      study_meta=meta, loaded=loaded)
        studies.append(sp)
        if not quiet:
            print(f"llem results site: exported {loaded.label} ({len(df)} job(s))", file=sys.stderr)
    return SiteInfo(out, index, studies)


class _Handler(SimpleHTTPRequestHandler):
    """Static files with the types module scripts need, no directory listings, quiet logs."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".mjs": "text/javascript",
                      ".json": "application/json", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
                      ".html": "text/html; charset=utf-8"}

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def list_directory(self, path):  # a site has an index.html; listing other folders shows nothing useful
        self.send_error(404, "Not found")
        return None

    def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's name
        pass


def make_server(site_dir: str | Path, port: int = 8000, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for ``site_dir`` on ``host:port`` (port 0: any free port); not yet serving."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: {port} is not a port; allowed: 0 (any free port) to 65535", field="port",
                          value=port, allowed="0-65535")
    try:
        return ThreadingHTTPServer((host, port), partial(_Handler, directory=str(site_dir)))
    except OSError as err:
        raise ConfigError(f"--port: cannot listen on {host}:{port} ({err.strerror}); allowed: a free port, or 0 for "
                          "any free one", field="port", value=port, allowed="a free port") from None


def site_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve(server: ThreadingHTTPServer, on_ready: Optional[Callable[[str], None]] = None) -> None:
    """Serve until interrupted (Ctrl-C), then close the socket."""
    if on_ready is not None:
        on_ready(site_url(server))
    try:
        server.serve_forever()
    finally:
        server.server_close()
