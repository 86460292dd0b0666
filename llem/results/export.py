"""Write the results table as CSV, Parquet or JSON, and read each back to an equal table.

Every file is written to a temporary name in the target directory and renamed into place, so
an interrupted or failed export never leaves half a file where a complete one is expected.

CSV files are opened by spreadsheets, which run a cell that begins with ``=``, ``+``, ``-``,
``@``, tab or carriage return as a formula: a model name or tag such as ``=HYPERLINK(...)``
would become live. Text cells that begin so are written with a leading ``'`` (the OWASP rule
for CSV injection); numbers, including negative ones, are written as they are. ``read_csv``
removes that quote again, so the table reads back equal. JSON and Parquet keep the raw text.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from llem.errors import ConfigError
from llem.results.table import coerce

FORMATS = ("csv", "parquet", "json", "leaderboard")
EXTENSIONS = {"csv": ".csv", "parquet": ".parquet", "json": ".json"}
TABLE_SCHEMA = "llem.results.table"
TABLE_SCHEMA_VERSION = "1.0"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not a known format; allowed: {', '.join(FORMATS)}",
                          field="format", value=fmt, allowed=list(FORMATS))
    return fmt


def _atomic(path: Path, write) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path``."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ConfigError(f"--out: {str(path)!r} is a directory; give a file path for this format",
                          field="out", value=str(path), allowed="a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out: cannot create {str(path.parent)!r} ({err.strerror})", field="out",
                          value=str(path), allowed="a writable path") from None
    from llem.fsio import write_file_atomic

    # the file's mode follows the umask, so a web server or a colleague can read an export
    return write_file_atomic(path, write)


def write_text_atomic(path: Path, text: str) -> Path:
    return _atomic(path, lambda t: t.write_text(text))


# --- CSV ----------------------------------------------------------------------------------------

#: first characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# a plain number written as text ("-5", "+1.5e3") is no formula: a spreadsheet reads it as a number
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _needs_quote(text: str) -> bool:
    # A text that already begins with quotes before a formula character gets one more, so
    # that reading back (which removes exactly one) returns it unchanged.
    if not text.lstrip("'").startswith(FORMULA_START):
        return False
    return text.startswith("'") or not _PLAIN_NUMBER.fullmatch(text)


def defuse_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and _needs_quote(value):
        return "'" + value
    return value


def restore_cell(value: Any) -> Any:
    """The inverse of :func:`defuse_cell` on a cell read back from a CSV export."""
    if isinstance(value, str) and value.startswith("'") and _needs_quote(value[1:]):
        return value[1:]
    return value


def defuse_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells cannot run as spreadsheet formulas; numbers untouched."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or isinstance(out[c].dtype, pd.StringDtype):
            out[c] = out[c].astype("object").map(defuse_cell)
    return out


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    safe = defuse_formulas(df)
    # CRLF line ends (RFC 4180): the writer quotes a field holding any line-end character, and
    # with "\n" alone a text with a carriage return would be written bare and split the row
    return _atomic(Path(path), lambda t: safe.to_csv(t, index=False, lineterminator="\r\n"))


def read_csv(path: str | Path) -> pd.DataFrame:
    # everything as text first; coerce() then applies the one dtype each column has everywhere
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    raw = raw.astype("object").where(raw.notna(), None)
    return coerce(raw.map(restore_cell))


# --- Parquet ------------------------------------------------------------------------------------

def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    return _atomic(Path(path), lambda t: df.to_parquet(t, index=False))


def read_parquet(path: str | Path) -> pd.DataFrame:
    return coerce(pd.read_parquet(path))


# --- JSON ---------------------------------------------------------------------------------------

def _jsonable(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _jsonable(v.item())
    return v


def table_document(df: pd.DataFrame, meta: Optional[dict] = None) -> dict:
    """The JSON export: column names and dtypes, then one object per row."""
    from llem._version import __version__

    rows = [{c: _jsonable(v) for c, v in zip(df.columns, rec)} for rec in df.itertuples(index=False, name=None)]
    return {
        "schema": TABLE_SCHEMA,
        "schema_version": TABLE_SCHEMA_VERSION,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "llem_version": __version__,
        "meta": meta or {},
        "columns": [{"name": c, "dtype": str(df[c].dtype)} for c in df.columns],
        "rows": rows,
    }


def write_json(df: pd.DataFrame, path: str | Path, meta: Optional[dict] = None) -> Path:
    text = json.dumps(table_document(df, meta), indent=1, allow_nan=False)
    return write_text_atomic(Path(path), text)


def read_json(path: str | Path) -> pd.DataFrame:
    doc = json.loads(Path(path).read_text())
    if doc.get("schema") != TABLE_SCHEMA:
        raise ConfigError(f"{str(path)!r} is not an llem results table (schema {doc.get('schema')!r})",
                          field="json", value=str(path), allowed=TABLE_SCHEMA)
    cols = [c["name"] for c in doc["columns"]]
    df = pd.DataFrame([[r.get(c) for c in cols] for r in doc["rows"]], columns=cols, dtype="object")
    df = coerce(df)
    # free-form columns carry their dtype in the document
    for c in doc["columns"]:
        if str(df[c["name"]].dtype) != c["dtype"] and c["dtype"] in ("Int64", "Float64", "boolean", "string"):
            df[c["name"]] = df[c["name"]].astype(c["dtype"])
    return df


# --- dispatch -----------------------------------------------------------------------------------

def default_out(source_dir: Path, fmt: str) -> Path:
    if fmt == "leaderboard":
        return source_dir / "leaderboard"
    return source_dir / f"results{EXTENSIONS[fmt]}"


def export_table(df: pd.DataFrame, fmt: str, out: str | Path, meta: Optional[dict] = None) -> Path:
    check_format(fmt)
    if fmt == "csv":
        return write_csv(df, out)
    if fmt == "parquet":
        return write_parquet(df, out)
    if fmt == "json":
        return write_json(df, out, meta)
    raise ConfigError("--format leaderboard is written by llem.results.leaderboard.write_leaderboard",
                      field="format", value=fmt, allowed=["csv", "parquet", "json"])


def read_table(path: str | Path) -> pd.DataFrame:
    """Read any table export back, by extension."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".csv":
        return read_csv(p)
    if ext == ".parquet":
        return read_parquet(p)
    if ext == ".json":
        return read_json(p)
    raise ConfigError(f"{str(p)!r}: unknown table extension {ext!r}; allowed: .csv, .parquet, .json",
                      field="path", value=str(p), allowed=[".csv", ".parquet", ".json"])
