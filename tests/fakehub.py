"""A fake Hugging Face hub: a TEST DOUBLE standing in for https://huggingface.co.

The real hub cannot be reached from the test machines, so the online code paths (transformers'
``from_pretrained`` and ``datasets.load_dataset`` with a hub id, both going through
``huggingface_hub``) are exercised against this server instead: point ``HF_ENDPOINT`` at
:attr:`FakeHub.url` in the process under test. Nothing here is llem code; it is only as faithful
to the hub as the clients need.

Only the endpoints those clients were seen calling (huggingface_hub 2.4, transformers 5.24,
datasets 5.2; each request is recorded in :attr:`FakeHub.requests`) are implemented:

* ``HEAD|GET /{repo}/resolve/{rev}/{file}`` and ``/datasets/{repo}/resolve/{rev}/{file}``:
  file metadata and bytes. ``X-Repo-Commit`` and ``ETag`` are what huggingface_hub's cache is
  keyed on; a missing file answers 404 with ``X-Error-Code: EntryNotFound``, which is how the
  clients tell "optional file absent" (e.g. no ``tokenizer.model``) from a broken repo.
* ``GET /api/{models|datasets}/{repo}[/revision/{rev}]``: repo info (the commit ``sha``).
* ``GET /api/{models|datasets}/{repo}/tree/{rev}[/{dir}]``: file listing (datasets resolves its
  data files by listing the repo through ``HfFileSystem``; transformers lists the repo and looks
  for ``additional_chat_templates/``).

Anything else answers 404 with ``X-Error-Code: RepoNotFound`` and stays in the request log, so
a client calling an endpoint this double lacks shows up there. One such call is expected and
harmless: huggingface_hub's best-effort ``GET /api/agent-harnesses`` (a registry it uses only
for its User-Agent string; a failure is swallowed). The dataset viewer
(``datasets-server.<endpoint host>``, asked for exported dataset infos) is a different host that
does not resolve, so datasets falls back to reading the repo, as it does for any dataset the
viewer has not processed.

A repo is a list of commits: ``{rev}`` is ``main`` (the last push) or a full commit id; anything
else answers 404 ``RevisionNotFound``. Every file is served as a plain git blob (ETag = git blob
sha1); there are no branches or tags besides ``main``, and no LFS, Xet, auth, pagination or redirect.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset"}


def git_blob_sha1(data: bytes) -> str:
    """The id git (and so the hub) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Request:
    method: str
    path: str  # unquoted, without the query string
    query: dict[str, list[str]]
    status: int
    user_agent: str


@dataclass
class Commit:
    """One revision of a repo: its files, and an id derived from them and the parent commit."""

    sha: str
    files: dict[str, bytes]

    def tree_entry(self, path: str) -> dict | None:
        path = path.strip("/")
        if path in self.files:
            return {"type": "file", "oid": git_blob_sha1(self.files[path]), "size": len(self.files[path]),
                    "path": path}
        if path == "" or any(f.startswith(path + "/") for f in self.files):
            return {"type": "directory", "oid": self.sha, "size": 0, "path": path}
        return None

    def listing(self, directory: str, recursive: bool) -> list[dict] | None:
        directory = directory.strip("/")
        if self.tree_entry(directory) is None or directory in self.files:
            return None
        prefix = directory + "/" if directory else ""
        entries: dict[str, dict] = {}
        for f in sorted(self.files):
            if not f.startswith(prefix):
                continue
            parts = f[len(prefix):].split("/")
            # parent directories are listed too, as the hub does; a non-recursive listing stops at them
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                d = prefix + "/".join(parts[:depth])
                entries.setdefault(d, self.tree_entry(d))  # type: ignore[arg-type]
            if recursive or len(parts) == 1:
                entries[f] = self.tree_entry(f)  # type: ignore[assignment]
        return list(entries.values())


@dataclass
class Repo:
    repo_type: str  # "model" or "dataset"
    repo_id: str
    commits: list[Commit] = field(default_factory=list)  # oldest first; ``main`` is the last

    @property
    def sha(self) -> str:
        return self.commits[-1].sha

    def push(self, files: dict[str, bytes]) -> str:
        """A new commit holding exactly ``files``; ``main`` moves to it. Returns its id."""
        h = hashlib.sha1(self.commits[-1].sha.encode() if self.commits else b"")
        for name in sorted(files):
            h.update(name.encode() + b"\0" + git_blob_sha1(files[name]).encode())
        self.commits.append(Commit(h.hexdigest(), dict(files)))
        return self.sha

    def at(self, rev: str) -> Commit | None:
        if rev == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c.sha == rev), None)

    def info(self, commit: Commit) -> dict:
        return {"id": self.repo_id, "_id": self.commits[0].sha[:24], "sha": commit.sha, "private": False,
                "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": f} for f in sorted(commit.files)]}


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port, serving in-memory repos.

    Use as a context manager; repos may be pushed before or after start.
    """

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- content ----------------------------------------------------------------------------
    def push(self, repo_type: str, repo_id: str, files: dict[str, bytes]) -> str:
        """Commit ``files`` to the repo (created on first push); returns the new commit id."""
        repo = self.repos.setdefault((repo_type, repo_id), Repo(repo_type, repo_id))
        return repo.push(files)

    def push_model(self, repo_id: str, directory: str | Path) -> str:
        """Commit every file under ``directory`` (e.g. a ``save_pretrained`` folder) to a model repo."""
        d = Path(directory)
        return self.push("model", repo_id, {p.relative_to(d).as_posix(): p.read_bytes()
                                            for p in sorted(d.rglob("*")) if p.is_file()})

    def push_dataset(self, repo_id: str, files: dict[str, bytes]) -> str:
        return self.push("dataset", repo_id, files)

    # --- server -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- what the clients did ---------------------------------------------------------------
    def log(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def downloads(self, repo_type: str, repo_id: str) -> list[tuple[str, str, str]]:
        """``(revision, file, user agent)`` of each file of the repo whose bytes were served."""
        prefix = ("/datasets/" if repo_type == "dataset" else "/") + repo_id + "/resolve/"
        return [(*r.path[len(prefix):].split("/", 1), r.user_agent) for r in self.requests  # type: ignore[misc]
                if r.method == "GET" and r.status == 200 and r.path.startswith(prefix)]

    def client_env(self, home: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for a process that must reach this hub and nothing else: online (the
        offline switches removed), ``HF_ENDPOINT`` here, every Hugging Face cache under ``home``,
        and no token, so nothing of the developer's real hub setup is read or sent."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.startswith(("HF_", "HUGGING_FACE_", "TRANSFORMERS_")) and k != "LLEM_OFFLINE"}
        home = Path(home)
        env.update(HF_ENDPOINT=self.url, HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"),
                   HF_DATASETS_CACHE=str(home / "datasets"),
                   # a proxy set for the real internet must not intercept loopback
                   NO_PROXY=",".join(filter(None, [env.pop("NO_PROXY", ""), env.pop("no_proxy", ""), "127.0.0.1"])))
        return env

    def summary(self) -> str:
        """The request log, one line each, for assertion messages."""
        return "\n".join(f"{r.status} {r.method} {r.path}" for r in self.requests)


class _Handler(BaseHTTPRequestHandler):
    fake_hub: FakeHub
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect

    def log_message(self, *args) -> None:  # the request log replaces stderr noise
        pass

    def do_HEAD(self) -> None:
        self._dispatch()

    do_GET = do_POST = do_HEAD

    # --- routing ------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        # split before unquoting: a revision such as refs%2Fpr%2F1 is one segment
        seg = [unquote(x) for x in parts.path.strip("/").split("/")]
        length = int(self.headers.get("Content-Length") or 0)
        if length:  # unread, a request body would be parsed as the next request on this connection
            self.rfile.read(length)
        status, headers, data = self._route(seg, query)
        self.fake_hub.log(Request(self.command, path, query, status, self.headers.get("User-Agent", "")))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _route(self, seg: list[str], query: dict) -> tuple[int, dict, bytes]:
        if seg[0] == "api" and len(seg) >= 4 and seg[1] in REPO_TYPES:
            return self._api(REPO_TYPES[seg[1]], seg[2] + "/" + seg[3], seg[4:], query)
        repo_type = "model"
        if seg[0] == "datasets":
            repo_type, seg = "dataset", seg[1:]
        if len(seg) >= 5 and seg[2] == "resolve":
            return self._resolve(repo_type, seg[0] + "/" + seg[1], seg[3], "/".join(seg[4:]))
        return _error(404, "RepoNotFound", f"no route for /{'/'.join(seg)}")

    def _commit(self, repo_type: str, repo_id: str, rev: str) -> tuple[Repo, Commit] | tuple[int, dict, bytes]:
        repo = self.fake_hub.repos.get((repo_type, repo_id))
        if repo is None:
            return _error(404, "RepoNotFound", f"Repository {repo_id} not found")
        commit = repo.at(rev)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return repo, commit

    def _resolve(self, repo_type: str, repo_id: str, rev: str, filename: str) -> tuple[int, dict, bytes]:
        found = self._commit(repo_type, repo_id, rev)
        if not isinstance(found[0], Repo):
            return found  # type: ignore[return-value]
        _, commit = found
        if filename not in commit.files:
            return _error(404, "EntryNotFound", f"{filename} does not exist on \"{rev}\"", commit.sha)
        data = commit.files[filename]
        return 200, {"Content-Type": "application/octet-stream", "X-Repo-Commit": commit.sha,
                     "ETag": f'"{git_blob_sha1(data)}"'}, data

    def _api(self, repo_type: str, repo_id: str, rest: list[str], query: dict) -> tuple[int, dict, bytes]:
        rev = "main"
        if rest[:1] == ["revision"] and len(rest) >= 2:
            rev, rest = rest[1], rest[2:]
        elif rest[:1] == ["tree"] and len(rest) >= 2:
            rev = rest[1]
        found = self._commit(repo_type, repo_id, rev)
        if not isinstance(found[0], Repo):
            return found  # type: ignore[return-value]
        repo, commit = found
        if not rest:
            return _json(repo.info(commit), commit.sha)
        if rest[0] == "tree":
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            entries = commit.listing("/".join(rest[2:]), recursive)
            if entries is None:
                return _error(404, "EntryNotFound", f"{'/'.join(rest[2:])} does not exist", commit.sha)
            return _json(entries, commit.sha)
        return _error(404, "RepoNotFound", f"no api route for {'/'.join(rest)}")


def _json(obj, sha: str) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json", "X-Repo-Commit": sha}, json.dumps(obj).encode()


def _error(status: int, code: str, message: str, sha: str | None = None) -> tuple[int, dict, bytes]:
    headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
    if sha:
        headers["X-Repo-Commit"] = sha
    return status, headers, json.dumps({"error": message}).encode()
