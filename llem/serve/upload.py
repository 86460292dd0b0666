"""What an upload is, and how the server reads one: strictly, whole, before touching the database.

The body (``llem results push`` builds it) is one JSON document::

    {"format": "llem.upload", "format_version": "1.0",
     "name": "<label of a single result>" | null,
     "client": {"llem_version": "...", "python": "...", "platform": "..."},
     "study": <manifest.json> | null,
     "results": [{"job_id": "0003", "result": <result.json>,
                  "timeseries": {"columns": {"t_s": [...], "power_w": [...], ...}} | null}, ...]}

``study`` and each ``result`` are validated by llem's own schemas (``StudyResult``,
``ExperimentResult``): the server accepts exactly what llem writes. A bad body is refused whole
with one message naming where it went wrong, and nothing is stored:

- not JSON, or JSON with ``NaN``/``Infinity``, or a number too large for a double (400);
- text that cannot be shown safely: NUL and other control characters (tab, newline and carriage
  return excepted), lone surrogates, bidirectional overrides, a string over 100,000 characters,
  nesting deeper than 64 levels (400);
- a schema it does not know (a result or manifest of another major version, or a newer minor
  version than this server reads) or a document the schema refuses (422).

Text that is merely unusual (``<script>``, quotes, SQL keywords) is stored as it is and always
shown as text: the queries bind every value, and the web page never parses stored text as HTML.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llem.result import SCHEMA_VERSION as RESULT_SCHEMA_VERSION
from llem.result import ExperimentResult
from llem.results.manifest import StudyResult

FORMAT = "llem.upload"
FORMAT_VERSION = "1.0"
MANIFEST_SCHEMA_VERSION = "1.0"
MAX_STRING_CHARS = 100_000
MAX_DEPTH = 64
MAX_TIMESERIES_COLUMNS = 32
MAX_TIMESERIES_VALUES = 2_000_000
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # anchored: pydantic's pattern= searches
_COLUMN = re.compile(r"[a-z][a-z0-9_]{0,63}")
# C0 controls but tab, newline, carriage return; lone surrogates; bidirectional embedding/override/isolate
_HOSTILE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
_INT_MAX = 2**63 - 1


class UploadError(Exception):
    """A refused upload: ``status`` is the HTTP status, ``message`` the one line the client sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llem_version: Optional[str] = Field(None, max_length=64)
    python: Optional[str] = Field(None, max_length=64)
    platform: Optional[str] = Field(None, max_length=300)


Cell = Union[float, int, str, bool, None]


class Timeseries(BaseModel):
    """A job's ``timeseries.parquet`` as columns of equal length (llem.measure.sampler's columns)."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, list[Cell]]

    @field_validator("columns")
    @classmethod
    def _shape(cls, cols: dict[str, list]) -> dict[str, list]:
        if len(cols) > MAX_TIMESERIES_COLUMNS:
            raise ValueError(f"at most {MAX_TIMESERIES_COLUMNS} columns")
        for name in cols:
            if not _COLUMN.fullmatch(name):
                raise ValueError(f"column name {name[:40]!r} is not allowed (lower-case letters, digits, _)")
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError("columns differ in length")
        if sum(len(v) for v in cols.values()) > MAX_TIMESERIES_VALUES:
            raise ValueError(f"more than {MAX_TIMESERIES_VALUES} values")
        return cols

    def rows(self) -> int:
        return len(next(iter(self.columns.values()), []))


class UploadedResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: Optional[str] = Field(None, pattern=JOB_ID.pattern, description="the job's id in the study's manifest")
    result: ExperimentResult
    timeseries: Optional[Timeseries] = None


class UploadBody(BaseModel):
    """``POST /api/v1/uploads``: one study (its manifest and results) or one bare result."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["llem.upload"] = FORMAT
    format_version: str = Field(FORMAT_VERSION, max_length=16)
    name: Optional[str] = Field(None, max_length=300, description="label of a single result (its directory name)")
    client: ClientInfo = ClientInfo()
    study: Optional[StudyResult] = None
    results: list[UploadedResult] = Field(default_factory=list, max_length=100_000)


# --- parsing ------------------------------------------------------------------------------------

def _no_constant(name: str):
    raise UploadError(400, f"body: {name} is not a number JSON allows; a missing value is null")


def _finite(text: str) -> float:
    v = float(text)
    if math.isinf(v):
        raise UploadError(400, f"body: the number {text[:40]} is too large for a double")
    return v


def _bounded_int(text: str) -> int:
    v = int(text)
    if abs(v) > _INT_MAX:
        raise UploadError(400, f"body: the integer {text[:40]}... is out of range (at most 2**63 - 1)")
    return v


def parse_json(body: bytes) -> Any:
    """The body as JSON, strictly: UTF-8, no NaN/Infinity, finite numbers, bounded nesting."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UploadError(400, f"body: not UTF-8 (byte {err.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int)
    except UploadError:
        raise
    except RecursionError:
        raise UploadError(400, f"body: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as err:
        raise UploadError(400, f"body: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except ValueError as err:  # an integer with too many digits
        raise UploadError(400, f"body: {str(err).splitlines()[0]}") from None


def _where(path: list) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def check_text(doc: Any) -> None:
    """Every string (keys too) is text a page or a terminal can show safely; nesting is bounded."""
    stack: list[tuple[Any, list, int]] = [(doc, [], 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UploadError(400, f"{_where(path)}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, str):
            _check_string(node, path)
        elif isinstance(node, dict):
            for k, v in node.items():
                _check_string(k, path + [f"<key {k[:20]!r}>"])
                stack.append((v, path + [k], depth + 1))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                stack.append((v, path + [i], depth + 1))


def _check_string(s: str, path: list) -> None:
    if len(s) > MAX_STRING_CHARS:
        raise UploadError(400, f"{_where(path)}: a string of {len(s)} characters; at most {MAX_STRING_CHARS}")
    m = _HOSTILE.search(s)
    if m:
        raise UploadError(400, f"{_where(path)}: contains the character U+{ord(m.group()):04X}, which is not "
                               "allowed (control characters other than tab/newline, lone surrogates, "
                               "bidirectional overrides)")


def _major_minor(v: str) -> Optional[tuple[int, int]]:
    m = re.fullmatch(r"(\d{1,4})\.(\d{1,4})", v or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_schema_version(found: str, supported: str, what: str, where: str) -> None:
    f, s = _major_minor(found), _major_minor(supported)
    if f is None or f[0] != s[0] or f[1] > s[1]:
        raise UploadError(422, f"{where}.schema_version: {found[:20]!r} is not a {what} schema this server reads; "
                               f"allowed: {s[0]}.0 to {supported}"
                               + (" (upgrade the server's llem)" if f is not None and f[0] == s[0] else ""))


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = _where(list(e.get("loc", ())))
    return f"{loc}: {e.get('msg')}"


def read_upload(body: bytes) -> UploadBody:
    """Parse and validate an upload body, or raise ``UploadError`` (nothing has been stored)."""
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise UploadError(422, f"body: a JSON object with format {FORMAT!r} is expected, got {type(doc).__name__}")
    check_text(doc)
    if doc.get("format") != FORMAT:
        raise UploadError(422, f"format: {str(doc.get('format'))[:40]!r} is not an llem upload; allowed: {FORMAT!r}")
    check_schema_version(str(doc.get("format_version", "")), FORMAT_VERSION, "upload format", "format")
    # versions first: a newer llem's result fails the schema below with a less helpful message
    if isinstance(doc.get("study"), dict):
        check_schema_version(str(doc["study"].get("schema_version", "1.0")), MANIFEST_SCHEMA_VERSION, "manifest",
                             "study")
    for i, r in enumerate(doc.get("results") or []):
        if isinstance(r, dict) and isinstance(r.get("result"), dict):
            check_schema_version(str(r["result"].get("schema_version", "")), RESULT_SCHEMA_VERSION, "result",
                                 f"results[{i}].result")
    try:
        up = UploadBody.model_validate(doc)
    except ValidationError as err:
        raise UploadError(422, _first_error(err)) from None
    _check_consistent(up)
    return up


def _check_consistent(up: UploadBody) -> None:
    for i, r in enumerate(up.results):
        if not (-(2**31) <= r.result.batch < 2**31):
            raise UploadError(422, f"results[{i}].result.batch: {r.result.batch} is out of range")
    if up.study is None:
        if len(up.results) != 1:
            raise UploadError(422, f"results: an upload without a study manifest holds exactly one result, "
                                   f"got {len(up.results)}")
        if not JOB_ID.fullmatch(up.results[0].job_id or up.results[0].result.experiment_id):
            raise UploadError(422, "results[0].result.experiment_id: not a valid job id "
                                   f"({JOB_ID.pattern})")
        return
    planned = {j.job_id for j in up.study.jobs}
    for j in up.study.jobs:
        if not JOB_ID.fullmatch(j.job_id):
            raise UploadError(422, f"study.jobs: job id {j.job_id[:70]!r} is not allowed ({JOB_ID.pattern})")
    if len(planned) != len(up.study.jobs):
        raise UploadError(422, "study.jobs: job ids repeat")
    seen = set()
    for i, r in enumerate(up.results):
        if r.job_id is None:
            raise UploadError(422, f"results[{i}].job_id: required when the upload has a study manifest")
        if r.job_id not in planned:
            raise UploadError(422, f"results[{i}].job_id: {r.job_id!r} is not a job of the study's manifest")
        if r.job_id in seen:
            raise UploadError(422, f"results[{i}].job_id: {r.job_id!r} appears twice")
        seen.add(r.job_id)
