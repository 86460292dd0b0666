"""The client side of ``llem serve``: ``llem results push DIR --to URL`` and the HTTP calls a live
study makes (``llem.study.live``). Standard library only, so pushing needs no server extra.

The API token comes from the ``LLEM_API_TOKEN`` environment variable (never from the command line,
where other users of the machine could read it in the process list).
"""
from __future__ import annotations

import json
import os
import platform
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

from llem.errors import ConfigError, LlemError

TOKEN_ENV = "LLEM_API_TOKEN"
UPLOAD_FORMAT = "llem.upload"
UPLOAD_FORMAT_VERSION = "1.0"
_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?")


class RemoteError(LlemError):
    """The server answered with an error, or could not be reached: one line, exit 1."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


def check_url(url: str, flag: str) -> str:
    u = (url or "").strip()
    if not _URL.fullmatch(u):
        raise ConfigError(f"{flag}: {url!r} is not a server URL; allowed: http(s)://HOST[:PORT][/PATH], "
                          "e.g. http://127.0.0.1:8000", field=flag, value=url, allowed="http(s)://HOST[:PORT]")
    return u.rstrip("/")


def api_token(flag: str) -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(f"{flag}: no API token: set {TOKEN_ENV} (the server's admin creates one with "
                          "`llem serve token create USER`)", field=TOKEN_ENV, value=None, allowed="an API token")
    return token


def call(method: str, url: str, *, token: Optional[str] = None, body: Optional[bytes] = None,
         timeout_s: float = 60.0) -> tuple[int, Any]:
    """(status, parsed JSON) for 2xx; ``RemoteError`` for anything else, with the server's message."""
    headers = {"Accept": "application/json", "User-Agent": "llem"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        detail = ""
        try:
            detail = json.loads(err.read()).get("detail", "")
        except Exception:
            pass
        if isinstance(detail, list):  # FastAPI's own validation errors
            detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail[:3])
        raise RemoteError(f"{url}: HTTP {err.code}: {detail or err.reason}", err.code) from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise RemoteError(f"{url}: cannot reach the server ({reason})") from None


# --- push ----------------------------------------------------------------------------------------

def _strict_json(path: Path) -> Any:
    def no_constant(name):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constant)
    except (ValueError, OSError) as err:
        raise ConfigError(f"{path}: cannot be pushed ({err})", field="DIR", value=str(path),
                          allowed="result.json files as llem writes them") from None


def _timeseries(path: Optional[Path]) -> Optional[dict]:
    if path is None:
        return None
    import pandas as pd

    df = pd.read_parquet(path)
    df = df.astype(object).where(df.notna(), None)
    cols = {}
    for c in df.columns:
        cols[str(c)] = [v.item() if hasattr(v, "item") else v for v in df[c].tolist()]
    return {"columns": cols}


def build_upload(path: str | Path, *, timeseries: bool = True,
                 progress: Optional[Callable[[int, int, str], None]] = None) -> tuple[bytes, dict]:
    """The upload body for a study directory, a job directory or a result.json, and a summary."""
    from llem._version import __version__
    from llem.results.load import RESULT_NAME, load_path
    from llem.results.manifest import MANIFEST_NAME

    loaded = load_path(path)
    if loaded.kind == "directory":
        raise ConfigError(f"DIR: {str(loaded.path)!r} has result.json files but no {MANIFEST_NAME}; push the study "
                          "directory after rebuilding its manifest (llem run --resume DIR --rebuild-manifest), "
                          "or push each job directory", field="DIR", value=str(loaded.path),
                          allowed="a study directory or a job directory")
    study = _strict_json(loaded.path / MANIFEST_NAME) if loaded.study is not None else None
    results, n_ts, skipped = [], 0, []
    with_result = [e for e in loaded.entries if e.result is not None]
    for i, e in enumerate(with_result):
        if progress:
            progress(i + 1, len(with_result), e.job_id)
        if loaded.study is not None:
            rel = e.job.result_path or (f"{e.job.job_dir}/{RESULT_NAME}" if e.job.job_dir else None)
            rpath = loaded.path / rel
        else:
            rpath = Path(path) if Path(path).is_file() else loaded.path / RESULT_NAME
        ts = _timeseries(e.timeseries_path()) if timeseries else None
        n_ts += ts is not None
        results.append({"job_id": e.job.job_id if e.job is not None else None, "result": _strict_json(rpath),
                        "timeseries": ts})
    skipped = [e.job_id for e in loaded.entries if e.result is None]
    doc = {"format": UPLOAD_FORMAT, "format_version": UPLOAD_FORMAT_VERSION,
           "name": loaded.label if loaded.study is None else None,
           "client": {"llem_version": __version__, "python": platform.python_version(),
                      "platform": platform.platform()[:300]},
           "study": study, "results": results}
    body = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return body, {"label": loaded.label, "kind": loaded.kind, "results": len(results), "timeseries": n_ts,
                  "without_result": skipped, "jobs": len(loaded.entries)}


def push(path: str | Path, url: str, *, timeseries: bool = True, quiet: bool = False) -> dict:
    """Upload a study (or one result) to ``llem serve`` at ``url``; returns the server's answer."""
    base = check_url(url, "--to")
    token = api_token("--to")
    _, info = call("GET", f"{base}/api/v1/info", timeout_s=30)
    if not isinstance(info, dict) or info.get("name") != "llem":
        raise RemoteError(f"{base}: not an llem server (GET /api/v1/info answered without name 'llem')")
    body, summary = build_upload(path, timeseries=timeseries)
    limit = int(info.get("max_upload_bytes") or 0)
    if limit and len(body) > limit:
        hint = ("; push without time series (--no-timeseries)" if summary["timeseries"] else "")
        raise RemoteError(f"{path}: the upload is {len(body) / 2**20:.1f} MiB and {base} accepts at most "
                          f"{limit / 2**20:.1f} MiB{hint}, or ask its admin to raise llem serve --max-upload-mb")
    if not quiet:
        print(f"llem results push: {summary['label']}: {summary['results']} result(s)"
              f" ({summary['timeseries']} with time series), {len(body) / 2**20:.2f} MiB -> {base}",
              file=sys.stderr, flush=True)
    _, answer = call("POST", f"{base}/api/v1/uploads", token=token, body=body, timeout_s=600)
    answer["without_result"] = summary["without_result"]
    answer["base_url"] = base
    return answer
