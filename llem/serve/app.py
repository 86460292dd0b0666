"""The FastAPI application: read API, uploads, leaderboard files, live view, and the web page.

Security, by construction:
- every database statement binds its values (SQLAlchemy expressions; sort keys from fixed lists);
- no request reaches the file system: the page and its two assets are read from the package once,
  at start, and served from memory by fixed routes; leaderboard "files" are database rows;
- CORS is closed unless ``--cors-origin`` names origins (then GET only);
- tokens are read from the ``Authorization`` header only and never logged;
- uploads are rate-limited per user (429 with ``Retry-After``), size-limited (413) and validated
  whole before anything is stored (llem.serve.upload);
- query and path text with control characters is refused (400) before it reaches a query;
- the page runs under a Content-Security-Policy that allows only its own script, and fetches
  nothing from other hosts.
"""

import asyncio
import hashlib
import html
import json
import logging
import re
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Annotated, Callable, Literal, Optional

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.exc import IntegrityError

from llem._version import __version__
from llem.serve import schemas
from llem.serve.auth import Caller, caller_for
from llem.serve.db import Database
from llem.serve.live import LiveCreate, LiveEvents, LiveHub
from llem.serve.queries import JOB_SORT, STUDY_SORT
from llem.serve.ratelimit import RateLimiter
from llem.serve.settings import ServeSettings
from llem.serve.upload import (FORMAT, FORMAT_VERSION, MANIFEST_SCHEMA_VERSION, UploadBody, UploadError, _HOSTILE,
                               check_text, parse_json, read_upload)

log = logging.getLogger("llem.serve")
API = "/api/v1"
INT32 = 2**31 - 1
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"), (b"content-security-policy", CSP.encode())]

IdPath = Annotated[int, Path(ge=1, le=INT32)]
FileName = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,200}\.json$")]
# the leaderboard site (docs/site.md), served at /site/: the data-source setting of its page points
# at this server's leaderboard files, relative to the page, so a path prefix added by a reverse
# proxy keeps working
SITE_DATA_URL = "../leaderboard/index.json"
_DATA_META = re.compile(r'(<meta\s+name="llem-data-url"\s+content=")[^"]*(")')
_CSP_META = re.compile(r'<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]+)"')
SITE_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
              ".png": "image/png", ".woff2": "font/woff2", ".json": "application/json", ".map": "application/json"}


class Site:
    """The prebuilt leaderboard site (``llem/assets/site``), read once at start and kept in memory:
    its page with the data-source setting rewritten to this server's leaderboard files, its assets
    by name, and the Content-Security-Policy its page declares (sent as a header too)."""

    def __init__(self, data_url: str = SITE_DATA_URL) -> None:
        from llem.results.site import ASSETS

        self.index: Optional[bytes] = None
        self.assets: dict[str, tuple[bytes, str]] = {}
        self.csp = CSP
        if not (ASSETS / "index.html").is_file():
            return  # an installation without the prebuilt page: /site/ says so
        page = (ASSETS / "index.html").read_text(encoding="utf-8")
        page, n = _DATA_META.subn(lambda m: m.group(1) + html.escape(data_url, quote=True) + m.group(2), page)
        if n != 1:
            raise RuntimeError(f"{ASSETS / 'index.html'} has no <meta name=\"llem-data-url\">: "
                               "rebuild the site with scripts/build-web.sh")
        found = _CSP_META.search(page)
        if found:
            # the page's own policy, plus what only a header can say
            self.csp = html.unescape(found.group(1)).rstrip("; ") + "; frame-ancestors 'none'"
        self.index = page.encode("utf-8")
        folder = ASSETS / "assets"
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            if p.is_file() and p.suffix in SITE_TYPES:
                self.assets[p.name] = (p.read_bytes(), SITE_TYPES[p.suffix])


class SecurityHeaders:
    """Adds the security headers to every response (a plain ASGI wrapper: SSE streams pass through)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # a route that sets its own policy (the leaderboard site's page) keeps it
                own_csp = any(k.lower() == b"content-security-policy" for k, _ in headers)
                message["headers"] = headers + [h for h in SECURITY_HEADERS
                                                if not (own_csp and h[0] == b"content-security-policy")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _problem(status: int, detail: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _check_request_text(request: Request) -> None:
    """Query and path text with control characters never reaches a query (PostgreSQL refuses NUL)."""
    for k, v in request.query_params.multi_items():
        if _HOSTILE.search(k) or _HOSTILE.search(v) or len(v) > 1000:
            raise HTTPException(400, f"query parameter {k[:40]!r}: control characters or over 1000 characters")
    if _HOSTILE.search(request.url.path):
        raise HTTPException(400, "path: control characters are not allowed")


def _bearer(request: Request) -> Optional[str]:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _openapi_bodies() -> dict:
    """Request body schemas for the routes that read their body themselves (to refuse NaN,
    control characters and oversize bodies with one clear message)."""
    defs: dict = {}
    for model in (UploadBody, LiveCreate, LiveEvents):
        s = model.model_json_schema(ref_template="#/components/schemas/{model}")
        defs.update(s.pop("$defs", {}))
        defs[model.__name__] = s
    return defs


def _body(name: str) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}}}}}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = UploadError(413, f"body: larger than this server's limit of {limit} bytes "
                               f"({limit / 2**20:.1f} MiB); push without time series (--no-timeseries) "
                               "or ask the server's admin to raise --max-upload-mb")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Optional[ServeSettings] = None, *, db: Optional[Database] = None,
               clock: Optional[Callable[[], float]] = None) -> FastAPI:
    settings = settings or ServeSettings()
    db = db or Database(settings.database_url)
    hub = LiveHub()
    limiter = RateLimiter(settings.upload_rate_per_min, **({"clock": clock} if clock else {}))
    pages = {name: (resources.files("llem.serve") / "static" / name).read_bytes()
             for name in ("index.html", *STATIC)}
    site = Site()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.migrate_on_start:
            from llem.serve import migrate

            await run_in_threadpool(migrate.upgrade, settings.database_url)
        hub.loop = asyncio.get_running_loop()
        yield
        hub.loop = None

    app = FastAPI(title="llem results API", version=__version__, lifespan=lifespan,
                  # the interactive docs pages load their scripts from a CDN: off; /openapi.json stays
                  docs_url=None, redoc_url=None, dependencies=[Depends(_check_request_text)],
                  description="Stored llem results, uploads with provenance, and running studies (docs/serve.md).")
    app.state.db, app.state.hub, app.state.limiter, app.state.settings = db, hub, limiter, settings

    def openapi():
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            comps = schema.setdefault("components", {}).setdefault("schemas", {})
            comps.update(_openapi_bodies())
            # every error is {"detail": "<one line>"}, FastAPI's own validation errors included
            for path in schema.get("paths", {}).values():
                for op in path.values():
                    r422 = op.get("responses", {}).get("422")
                    if r422 is not None:
                        r422["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            comps.pop("HTTPValidationError", None)
            comps.pop("ValidationError", None)
            comps.setdefault("Problem", schemas.Problem.model_json_schema())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, err: UploadError):
        return _problem(err.status, err.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        e = err.errors()[0]
        where = ".".join(str(x) for x in e.get("loc", ()))
        value = e.get("input")
        shown = f" (got {str(value)[:60]!r})" if isinstance(value, (str, int, float)) else ""
        return _problem(422, f"{where}: {e.get('msg')}{shown}")

    def caller(request: Request) -> Caller:
        token = _bearer(request)
        with db.read() as conn:
            c = caller_for(conn, token)
        if c is None:
            detail = ("missing API token: send 'Authorization: Bearer <token>' (llem serve token create USER)"
                      if not token else "invalid or revoked API token")
            raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
        return c

    def rate_limited(c: Caller) -> None:
        wait_s = limiter.take(c.user_id)
        if wait_s:
            raise HTTPException(429, f"too many uploads: at most {settings.upload_rate_per_min} a minute; "
                                     f"retry in {wait_s:.0f} s", headers={"Retry-After": str(int(wait_s))})

    # --- the page -------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index_page():
        return Response(pages["index.html"], media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    @app.get("/static/app.js", include_in_schema=False)
    def app_js():
        return Response(pages["app.js"], media_type=STATIC["app.js"], headers={"Cache-Control": "no-cache"})

    @app.get("/static/app.css", include_in_schema=False)
    def app_css():
        return Response(pages["app.css"], media_type=STATIC["app.css"], headers={"Cache-Control": "no-cache"})

    # --- the leaderboard site (docs/site.md), reading this server's leaderboard files -------------
    @app.get("/site", include_in_schema=False)
    def site_redirect():
        # relative, so that a path prefix added by a reverse proxy is kept
        return Response(status_code=307, headers={"Location": "site/"})

    @app.get("/site/", include_in_schema=False)
    @app.get("/site/index.html", include_in_schema=False)
    def site_page():
        if site.index is None:
            raise HTTPException(404, "this llem installation has no prebuilt leaderboard site (llem/assets/site); "
                                     "reinstall llem, or build it from a clone with scripts/build-web.sh")
        return Response(site.index, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": site.csp})

    @app.get("/site/assets/{name}", include_in_schema=False)
    def site_asset(name: Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,200}$")]):
        found = site.assets.get(name)
        if found is None:
            raise HTTPException(404, f"no site asset {name!r}")
        # content-hashed names: a file's content never changes under its name
        return Response(found[0], media_type=found[1],
                        headers={"Cache-Control": "public, max-age=31536000, immutable",
                                 "Content-Security-Policy": site.csp})

    # --- read API -------------------------------------------------------------------------------
    @app.get(f"{API}/info", response_model=schemas.Info, tags=["read"])
    def info():
        from llem.result import SCHEMA_VERSION
        from llem.results.leaderboard import SCHEMA_VERSION as LB

        return {"name": "llem", "llem_version": __version__, "result_schema_version": SCHEMA_VERSION,
                "manifest_schema_version": MANIFEST_SCHEMA_VERSION, "leaderboard_schema_version": LB,
                "upload_format": FORMAT, "upload_format_version": FORMAT_VERSION,
                "max_upload_bytes": settings.max_upload_bytes, "upload_rate_per_min": settings.upload_rate_per_min,
                "database": "sqlite" if db.is_sqlite else "postgresql"}

    @app.get(f"{API}/jobs", response_model=schemas.JobPage, tags=["read"])
    def list_jobs(gpu: Annotated[Optional[str], Query(max_length=300, description="GPU name, exactly")] = None,
                  backend: Annotated[Optional[str], Query(max_length=100)] = None,
                  model: Annotated[Optional[str], Query(max_length=300)] = None,
                  precision: Annotated[Optional[str], Query(max_length=50)] = None,
                  batch: Annotated[Optional[int], Query(ge=1, le=INT32)] = None,
                  study: Annotated[Optional[int], Query(ge=1, le=INT32, description="study id")] = None,
                  status: Annotated[Optional[Literal["completed", "failed"]], Query()] = None,
                  measured: Annotated[Optional[bool], Query(description="energy measured")] = None,
                  since: Annotated[Optional[datetime], Query(description="started at or after (ISO 8601)")] = None,
                  until: Annotated[Optional[datetime], Query(description="started before (ISO 8601)")] = None,
                  sort: Literal[tuple(JOB_SORT)] = "id",
                  order: Literal["asc", "desc"] = "asc",
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0, le=10**9)] = 0):
        from llem.serve import queries
        from llem.serve.db import to_utc

        for name, when in (("since", since), ("until", until)):
            if when is not None and to_utc(when) is None:
                raise HTTPException(422, f"query.{name}: {when.isoformat()} cannot be expressed in UTC")
        with db.read() as conn:
            page = queries.list_jobs(conn, gpu=gpu, backend=backend, model=model, precision=precision, batch=batch,
                                     study=study, status=status, since=since, until=until,
                                     measured=measured, sort=sort, order=order, limit=limit, offset=offset)
        # already the documented shape (JobPage): sent as it is, without a second validation pass
        return JSONResponse(page)

    @app.get(f"{API}/jobs/{{job_id}}", response_model=schemas.JobDetail, tags=["read"],
             responses={404: {"model": schemas.Problem}})
    def get_job(job_id: IdPath):
        from llem.serve import queries

        with db.read() as conn:
            found = queries.get_job_text(conn, job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id}")
        job, study, result, ts = found
        body = (f'{{"job":{json.dumps(job)},"study":{json.dumps(study)},"result":{result},'
                f'"timeseries":{ts or "null"}}}')
        return Response(body, media_type="application/json")

    @app.get(f"{API}/compare", response_model=schemas.Comparison, tags=["read"],
             responses={404: {"model": schemas.Problem}})
    def compare(job: Annotated[list[Annotated[int, Query(ge=1, le=INT32)]],
                               Query(min_length=2, max_length=4, description="2 to 4 job ids")]):
        from llem.serve import queries

        if len(set(job)) != len(job):
            raise HTTPException(422, "job: the same job twice; give 2 to 4 different job ids")
        with db.read() as conn:
            pairs = queries.get_jobs_full(conn, job)
        missing = sorted(set(job) - {j["id"] for j, _ in pairs})
        if missing:
            raise HTTPException(404, f"no job {missing[0]}")
        return queries.compare(pairs)

    @app.get(f"{API}/studies", response_model=schemas.StudyPage, tags=["read"])
    def list_studies(owner: Annotated[Optional[str], Query(max_length=64)] = None,
                     sort: Literal[tuple(STUDY_SORT)] = "id",
                     order: Literal["asc", "desc"] = "desc",
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=10**9)] = 0):
        from llem.serve import queries

        with db.read() as conn:
            return JSONResponse(queries.list_studies(conn, owner=owner, sort=sort, order=order, limit=limit,
                                                     offset=offset))

    @app.get(f"{API}/studies/{{study_id}}", response_model=schemas.StudyDetail, tags=["read"],
             responses={404: {"model": schemas.Problem}})
    def get_study(study_id: IdPath):
        from llem.serve import queries

        with db.read() as conn:
            d = queries.get_study(conn, study_id)
        if d is None:
            raise HTTPException(404, f"no study {study_id}")
        return d

    # --- leaderboard files (the static site's data source) --------------------------------------
    @app.get("/leaderboard/index.json", tags=["leaderboard"],
             description="index.json of docs/leaderboard-schema.md, listing every stored study")
    def leaderboard_index():
        from llem.results.leaderboard import index_document
        from llem.serve import queries

        with db.read() as conn:
            lines = queries.leaderboard_index_lines(conn)
        return JSONResponse(index_document(lines), headers={"Cache-Control": "no-cache"})

    @app.get("/leaderboard/{file}", tags=["leaderboard"], responses={404: {"model": schemas.Problem}},
             description="one study's document, exactly as `llem results export --format leaderboard` writes it")
    def leaderboard_file(file: FileName):
        from llem.serve import queries

        with db.read() as conn:
            text = queries.leaderboard_text(conn, file[:-len(".json")])
        if text is None:
            raise HTTPException(404, f"no leaderboard file {file!r}")
        return Response(text, media_type="application/json", headers={"Cache-Control": "no-cache"})

    @app.get("/leaderboard/{folder}/{file}", tags=["leaderboard"], responses={404: {"model": schemas.Problem}},
             description="one job's file (`detail` of its entry in the study document): config, environment, "
                         "methodology, phase split and the downsampled time series, built from what was uploaded")
    def leaderboard_job_file(folder: Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,200}$")], file: FileName):
        from llem.serve import queries

        with db.read() as conn:
            doc = queries.leaderboard_job(conn, folder, file[:-len(".json")])
        if doc is None:
            raise HTTPException(404, f"no leaderboard file {folder + '/' + file!r}")
        return Response(json.dumps(doc, allow_nan=False, separators=(",", ":")), media_type="application/json",
                        headers={"Cache-Control": "no-cache"})

    # --- uploads --------------------------------------------------------------------------------
    @app.post(f"{API}/uploads", response_model=schemas.UploadOutcome, status_code=201, tags=["write"],
              openapi_extra=_body("UploadBody"),
              responses={200: {"model": schemas.UploadOutcome, "description": "already stored: nothing changed"},
                         400: {"model": schemas.Problem}, 401: {"model": schemas.Problem},
                         409: {"model": schemas.Problem}, 413: {"model": schemas.Problem},
                         422: {"model": schemas.Problem}, 429: {"model": schemas.Problem}})
    async def upload(request: Request, response: Response, who: Annotated[Caller, Depends(caller)]):
        from llem.serve.store import ingest

        rate_limited(who)
        body = await _read_body(request, settings.max_upload_bytes)

        def work():
            up = read_upload(body)
            return ingest(db, who, up, body_sha256=hashlib.sha256(body).hexdigest(), body_bytes=len(body))

        try:
            out = await run_in_threadpool(work)
        except IntegrityError:
            raise HTTPException(409, "the study changed under this upload (another push at the same moment); "
                                     "push again") from None
        log.info("upload by %s: study %d, %d added, %d replaced, %d unchanged", who.user_name, out.study_id,
                 out.added, out.replaced, out.unchanged)
        response.status_code = 201 if out.created else 200
        msg = (f"stored: {out.added} result(s) added, {out.replaced} replaced, {out.unchanged} already stored"
               if out.created else f"already stored: all {out.unchanged} result(s) were on the server; nothing changed")
        return {"created": out.created, "message": msg, "study_id": out.study_id, "upload_id": out.upload_id,
                "results_added": out.added, "results_replaced": out.replaced, "results_unchanged": out.unchanged,
                "owner": out.owner, "study_url": f"{API}/studies/{out.study_id}",
                "leaderboard_url": f"/leaderboard/{out.slug}.json", "verified": False}

    @app.delete(f"{API}/studies/{{study_id}}", response_model=schemas.Deleted, tags=["write"],
                responses={401: {"model": schemas.Problem}, 403: {"model": schemas.Problem},
                           404: {"model": schemas.Problem}})
    def delete_study(study_id: IdPath, who: Annotated[Caller, Depends(caller)]):
        from llem.serve.store import Forbidden, NotFound, delete_study as delete

        try:
            n = delete(db, who, study_id)
        except NotFound:
            raise HTTPException(404, f"no study {study_id}") from None
        except Forbidden:
            raise HTTPException(403, f"study {study_id} was uploaded by another user; only they can delete it") from None
        log.info("study %d deleted by %s (%d jobs)", study_id, who.user_name, n)
        return {"deleted": True, "study_id": study_id, "jobs_deleted": n}

    # --- live view ------------------------------------------------------------------------------
    @app.get(f"{API}/live/stream", response_class=EventSourceResponse, tags=["live"],
             description="Server-sent events: `snapshot` (every live study), then `study` and `power` as they change")
    async def live_stream():
        def snapshot() -> str:
            with db.read() as conn:
                return json.dumps(hub.snapshot(conn), allow_nan=False)

        sub = hub.subscribe()
        try:
            snap = await run_in_threadpool(snapshot)
            yield ServerSentEvent(raw_data=snap, event="snapshot", retry=2000)
            while True:
                kind, text = await sub.get()
                if kind == "resync":
                    yield ServerSentEvent(raw_data=await run_in_threadpool(snapshot), event="snapshot")
                else:
                    yield ServerSentEvent(raw_data=text, event=kind)
        finally:
            hub.unsubscribe(sub)

    @app.get(f"{API}/live", response_model=schemas.LiveList, tags=["live"])
    def live_list():
        with db.read() as conn:
            return hub.snapshot(conn)

    @app.get(f"{API}/live/{{live_id}}", response_model=schemas.LiveStudyState, tags=["live"],
             responses={404: {"model": schemas.Problem}})
    def live_get(live_id: IdPath):
        with db.read() as conn:
            st = hub.state(conn, live_id)
        if st is None:
            raise HTTPException(404, f"no live study {live_id}")
        return st

    def _live_body(body: bytes, model):
        doc = parse_json(body)
        check_text(doc)
        from pydantic import ValidationError

        from llem.serve.upload import _first_error

        try:
            return model.model_validate(doc)
        except ValidationError as err:
            raise UploadError(422, _first_error(err)) from None

    @app.post(f"{API}/live", response_model=schemas.LiveCreated, status_code=201, tags=["live"],
              openapi_extra=_body("LiveCreate"),
              responses={400: {"model": schemas.Problem}, 401: {"model": schemas.Problem},
                         413: {"model": schemas.Problem}, 422: {"model": schemas.Problem},
                         429: {"model": schemas.Problem}})
    async def live_create(request: Request, who: Annotated[Caller, Depends(caller)]):
        rate_limited(who)
        raw = await _read_body(request, settings.max_upload_bytes)

        def work():
            body = _live_body(raw, LiveCreate)
            try:
                with db.write() as conn:
                    live_id = hub.create(conn, who, body)
            except IntegrityError:  # the same study announced twice at once: the other one created it
                with db.write() as conn:
                    live_id = hub.create(conn, who, body)
            with db.read() as conn:
                return live_id, hub.state(conn, live_id, with_power=False)

        live_id, st = await run_in_threadpool(work)
        hub.publish({"type": "study", "study": st})
        return {"id": live_id, "url": f"{API}/live/{live_id}"}

    @app.post(f"{API}/live/{{live_id}}/events", response_model=schemas.LiveAccepted, tags=["live"],
              openapi_extra=_body("LiveEvents"),
              responses={400: {"model": schemas.Problem}, 401: {"model": schemas.Problem},
                         403: {"model": schemas.Problem}, 404: {"model": schemas.Problem},
                         413: {"model": schemas.Problem}, 422: {"model": schemas.Problem}})
    async def live_events(live_id: IdPath, request: Request, who: Annotated[Caller, Depends(caller)]):
        raw = await _read_body(request, settings.max_upload_bytes)

        def work():
            body = _live_body(raw, LiveEvents)
            with db.write() as conn:
                owner = hub.owner_of(conn, live_id)
                if owner is None:
                    raise HTTPException(404, f"no live study {live_id}")
                if owner != who.user_id:
                    raise HTTPException(403, f"live study {live_id} belongs to another user")
                hub.apply(conn, live_id, body)
            with db.read() as conn:
                return body, hub.state(conn, live_id, with_power=False)

        body, st = await run_in_threadpool(work)
        if body.jobs or body.status or body.power_unavailable_reason:
            hub.publish({"type": "study", "study": st})
        for p in body.power:
            hub.publish({"type": "power", "live_id": live_id, "job_id": p.job_id, "gpu_index": p.gpu_index,
                         "samples": [[round(t, 3), round(w, 3)] for t, w in p.samples]})
        return {"accepted": True}

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(SecurityHeaders)
    return app

