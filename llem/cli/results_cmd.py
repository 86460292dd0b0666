"""``llem results show|compare|export|plot``: a thin layer over ``llem.results``.

Tables and file paths go to stdout; progress goes to stderr (``--quiet`` silences it). Bad input
raises ``ConfigError`` (exit 2, one line), before any file is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llem.errors import ConfigError

USAGE = """usage: llem results <show|compare|export|plot|site|push> ...

  show DIR [--sort METRIC] [--desc] [--wide | --columns a,b,...] [--warnings] [carbon options]
  compare A B [--metric METRIC ...]     (quality scores and quality_per_joule included when both have them)
  export DIR --format csv|parquet|json|leaderboard [--out PATH] [carbon options]
  plot DIR [--out DIR]
  site DIR... [--out SITE] [--serve [--port 8000]]   a static leaderboard site (docs/site.md); --serve
                                        serves it on 127.0.0.1 (without --out, from a temporary folder)
  push DIR --to URL [--no-timeseries]   upload to llem serve (token in $LLEM_API_TOKEN)

DIR is a study directory (manifest.json), a job directory or a result.json.
carbon options: --carbon COUNTRY|auto [--pue 1.0] [--carbon-intensity G_PER_KWH]
every command takes --quiet (no progress on stderr)
"""

class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as ``ConfigError`` (one line, exit 2) instead of exiting."""

    def error(self, message):  # noqa: D401 - argparse API
        raise ConfigError(f"{self.prog}: {message}", field=self.prog, value=None, allowed=None)

    def exit(self, status=0, message=None):
        if message:
            print(message, file=sys.stderr, end="")
        raise SystemExit(status)


def _add_carbon(p: argparse.ArgumentParser) -> None:
    p.add_argument("--carbon", metavar="COUNTRY", help="add gCO2e columns for this grid (ISO code, or 'auto')")
    p.add_argument("--carbon-intensity", type=float, metavar="G_PER_KWH",
                   help="use this grid intensity (gCO2e/kWh) instead of a table")
    p.add_argument("--pue", type=float, default=1.0, help="data-centre PUE factor (default 1.0)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="llem results", usage=USAGE, add_help=True)
    sub = p.add_subparsers(dest="action", parser_class=_Parser)
    s = sub.add_parser("show", prog="llem results show")
    s.add_argument("path", metavar="DIR")
    s.add_argument("--sort", metavar="METRIC")
    s.add_argument("--desc", action="store_true", help="sort descending")
    s.add_argument("--columns", metavar="A,B,...", help="exactly these columns (default: the headline metrics, "
                                                         "fitted to 120 characters)")
    s.add_argument("--wide", action="store_true", help="every default column, however wide")
    s.add_argument("--warnings", action="store_true", help="list every measurement warning, by job")
    _add_carbon(s)
    s.add_argument("--quiet", "-q", action="store_true")
    c = sub.add_parser("compare", prog="llem results compare")
    c.add_argument("a", metavar="A")
    c.add_argument("b", metavar="B")
    c.add_argument("--metric", action="append", metavar="METRIC")
    c.add_argument("--quiet", "-q", action="store_true")
    e = sub.add_parser("export", prog="llem results export")
    e.add_argument("path", metavar="DIR")
    e.add_argument("--format", required=True, metavar="FORMAT")
    e.add_argument("--out", metavar="PATH")
    _add_carbon(e)
    e.add_argument("--quiet", "-q", action="store_true")
    pl = sub.add_parser("plot", prog="llem results plot")
    pl.add_argument("path", metavar="DIR")
    pl.add_argument("--out", metavar="DIR")
    pl.add_argument("--quiet", "-q", action="store_true")
    st = sub.add_parser("site", prog="llem results site")
    st.add_argument("paths", metavar="DIR", nargs="+")
    st.add_argument("--out", metavar="SITE", help="the site directory (new, empty, or an earlier site: studies are added)")
    st.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1 and print its URL (Ctrl-C stops)")
    st.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free port)")
    st.add_argument("--quiet", "-q", action="store_true")
    pu = sub.add_parser("push", prog="llem results push")
    pu.add_argument("path", metavar="DIR")
    pu.add_argument("--to", required=True, metavar="URL", help="the llem serve server, e.g. http://127.0.0.1:8000")
    pu.add_argument("--no-timeseries", action="store_true", help="leave the GPU time series out (smaller upload)")
    pu.add_argument("--quiet", "-q", action="store_true")
    return p


def results_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    actions = ("show", "compare", "export", "plot", "site", "push")
    if argv[0] not in actions:
        raise ConfigError(f"results: unknown action {argv[0]!r}; allowed: {', '.join(actions)}",
                          field="action", value=argv[0], allowed=list(actions))
    args = _parser().parse_args(argv)
    _precheck(args)
    return {"show": _show, "compare": _compare, "export": _export, "plot": _plot, "site": _site,
            "push": _push}[args.action](args)


def _precheck(args) -> None:
    """Reject bad options before reading any result, so the error is the only thing printed."""
    from llem.results.carbon import CARBON_COLUMNS
    from llem.results.table import base_columns, column_dtype

    for p in [getattr(args, a, None) for a in ("path", "a", "b")] + list(getattr(args, "paths", None) or []):
        if p is not None and not Path(p).expanduser().exists():
            raise ConfigError(f"DIR: {p!r} does not exist; expected a study directory (manifest.json), "
                              f"a job directory or a result.json", field="DIR", value=p,
                              allowed="study dir | job dir | result.json")
    if getattr(args, "to", None) is not None:
        from llem.results.remote import api_token, check_url

        check_url(args.to, "--to")
        api_token("--to")
    out = getattr(args, "out", None)
    if args.action == "site":
        from llem.results.site import assets_dir, check_out

        if out is None and not args.serve:
            raise ConfigError("--out: give the site directory (or --serve to serve a temporary one)", field="out",
                              value=None, allowed="a new or empty directory, or an earlier llem site")
        if out is not None:
            check_out(Path(out))
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port: {args.port} is not a port; allowed: 0 (any free port) to 65535",
                              field="port", value=args.port, allowed="0-65535")
        assets_dir()
    elif out is not None:
        wants_dir = args.action == "plot" or getattr(args, "format", None) == "leaderboard"
        o = Path(out)
        if wants_dir and o.is_file():
            raise ConfigError(f"--out: {out!r} is a file; allowed: a directory (this writes several files)",
                              field="out", value=out, allowed="a directory")
        if not wants_dir and o.is_dir():
            raise ConfigError(f"--out: {out!r} is a directory; allowed: a file path for --format {args.format}",
                              field="out", value=out, allowed="a file path")
    known = base_columns() + CARBON_COLUMNS
    if getattr(args, "columns", None):
        for c in (c.strip() for c in args.columns.split(",")):
            # quality_* columns depend on the tasks evaluated: checked once the results are read
            if c and c not in known and "." not in c and not c.startswith("quality_"):
                raise ConfigError(f"--columns: {c!r} is not a column; allowed: {', '.join(known)}",
                                  field="columns", value=c, allowed=known)

    if getattr(args, "format", None) is not None:
        from llem.results.export import check_format

        check_format(args.format)
    if getattr(args, "carbon", None) is not None or getattr(args, "carbon_intensity", None) is not None:
        from llem.results.carbon import grid_intensity, validate_pue

        validate_pue(args.pue)
        if args.carbon != "auto":
            grid_intensity(args.carbon, intensity_g_per_kwh=args.carbon_intensity)
    sort = getattr(args, "sort", None)
    if sort is not None:
        numeric = [c for c in base_columns() if column_dtype(c) in ("Float64", "Int64")]
        numeric += ["carbon_gco2e", "carbon_gco2e_per_output_token", "carbon_intensity_g_per_kwh"]
        # a swept config key (dotted) or a quality column is only known once the results are read
        if sort not in numeric and "." not in sort and not sort.startswith("quality_"):
            raise ConfigError(f"--sort: {sort!r} is not a metric column; allowed: {', '.join(numeric)}",
                              field="sort", value=sort, allowed=numeric)
    for m in getattr(args, "metric", None) or []:
        numeric = [c for c in base_columns() if column_dtype(c) in ("Float64", "Int64")]
        if m not in numeric and "." not in m and not m.startswith("quality_"):
            raise ConfigError(f"--metric: {m!r} is not a metric column; allowed: {', '.join(numeric)}",
                              field="metric", value=m, allowed=numeric)


# --- helpers ------------------------------------------------------------------------------------

def _load(path: str, quiet: bool):
    from llem.results.load import load_path
    from llem.results.progress import Progress
    from llem.results.table import loaded_to_dataframe

    loaded = load_path(path, progress=Progress("loading results", quiet=quiet, min_total=10))
    return loaded, loaded_to_dataframe(loaded)


def _with_carbon(df, args):
    if args.carbon is None and args.carbon_intensity is None:
        if args.pue != 1.0:
            raise ConfigError("--pue: only meaningful with --carbon COUNTRY or --carbon-intensity G",
                              field="pue", value=args.pue, allowed="with --carbon")
        return df
    from llem.results.carbon import add_carbon_columns

    return add_carbon_columns(df, args.carbon, pue=args.pue, intensity_g_per_kwh=args.carbon_intensity)


def _fmt(v, digits: int = 4) -> str:
    from llem.results.view import fmt_value

    return fmt_value(v, digits)


def _isna(v) -> bool:
    import pandas as pd

    return v is None or (not isinstance(v, (list, tuple)) and bool(pd.isna(v)))


# --- show ---------------------------------------------------------------------------------------

def _show(args) -> int:
    from llem.results.table import metric_columns
    from llem.results.view import DEFAULT_WIDTH, column_key, show_table, warnings_block

    if args.wide and args.columns:
        raise ConfigError("--wide: give --wide or --columns, not both (--columns already picks every column shown)",
                          field="wide", value=True, allowed="--wide or --columns")
    loaded, df = _load(args.path, args.quiet)
    df = _with_carbon(df, args)
    cols = None
    if args.columns:
        cols = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in cols if c not in df.columns]
        if unknown:
            raise ConfigError(f"--columns: {unknown[0]!r} is not a column; allowed: {', '.join(df.columns)}",
                              field="columns", value=unknown[0], allowed=list(df.columns))
    extra = []
    if args.sort:
        allowed = metric_columns(df)
        if args.sort not in allowed:
            raise ConfigError(f"--sort: {args.sort!r} is not a metric column; allowed: {', '.join(allowed)}",
                              field="sort", value=args.sort, allowed=allowed)
        df = df.sort_values(args.sort, ascending=not args.desc, na_position="last", kind="mergesort")
        if cols is not None and args.sort not in cols:
            cols.append(args.sort)
        extra = [args.sort]
    title = (f"study {loaded.study.study_name} ({loaded.path}), design {loaded.study.study_design_hash[:12]}"
             if loaded.study is not None else f"{loaded.kind} {loaded.path}")
    print(title)
    print(f"{len(df)} job(s): " + ", ".join(f"{n} {s}" for s, n in df["status"].fillna("unknown")
                                            .value_counts().sort_index().items()))
    from llem.results.quality import show_specs  # each task's score and quality_per_joule

    table = show_table(df, cols, wide=args.wide, extra=extra, more=show_specs(df))
    if table.common:
        print("all jobs: " + ", ".join(table.common))
    print()
    print(table.text)
    notes = []
    if table.hidden:
        notes.append(f"hidden to fit {DEFAULT_WIDTH} columns: {', '.join(table.hidden)} (--wide shows every "
                     "column, --columns a,b,... picks)")
    if table.empty:
        notes.append(f"no job has a value for: {', '.join(table.empty)}")
    key = column_key(table.shown)
    if key:
        notes.append(f"columns: {key}")
    _print_notes(df, notes, args.warnings)
    if args.warnings:
        lines = warnings_block(loaded.entries, df)
        print(f"\nwarnings ({int(df['n_warnings'].fillna(0).sum())}):" if lines else "\nwarnings: none")
        for ln in lines:
            print(ln)
    if "carbon_gco2e" in df.columns:
        _print_carbon(df)
    return 0


def _print_notes(df, notes: list, listed_warnings: bool = False) -> None:
    from llem.results.view import wrap_note

    notes = list(notes)
    if "energy_estimated" in df.columns and df["energy_estimated"].fillna(False).any():
        notes.append("* estimated energy (not a hardware energy counter): label it when you publish it")
    unmeasured = df[df["energy_not_measured_reason"].notna()]
    for reason, g in unmeasured.groupby("energy_not_measured_reason", sort=True):
        notes.append(f"energy n/a for job(s) {', '.join(g['job_id'].astype(str))}: {reason}")
    failed = df[df["error_type"].notna() | df["error_message"].notna()]
    for r in failed.to_dict("records"):
        notes.append(f"job {r['job_id']} {r['status']}: {r['error_type'] or ''}: {r['error_message'] or ''}".strip())
    problems = df[df["result_problem"].notna()]
    for r in problems.to_dict("records"):
        notes.append(f"job {r['job_id']}: {r['result_problem']}")
    n_warn = int(df["n_warnings"].fillna(0).sum())
    if n_warn and not listed_warnings:
        jobs = int((df["n_warnings"].fillna(0) > 0).sum())
        notes.append(f"{n_warn} measurement warning(s) in {jobs} job(s); --warnings lists them")
    if "synthetic" in df.columns and df["synthetic"].fillna(False).any():
        notes.append("SYNTHETIC TEST DATA present: some energy values are fabricated, not measured")
    # --- quality (llem/results/quality.py) ---
    from llem.results.quality import notes as quality_notes

    notes.extend(quality_notes(df))
    # --- end quality ---
    if notes:
        print("\nnotes:")
        for n in notes:
            for ln in wrap_note(n):
                print(ln)


def _print_carbon(df) -> None:
    print("\ncarbon (derived, not measured; kept apart from energy):")
    grids = df.dropna(subset=["carbon_country"]).drop_duplicates(
        ["carbon_country", "carbon_intensity_g_per_kwh", "carbon_pue", "carbon_source"])
    for g in grids.to_dict("records"):
        print(f"  grid {g['carbon_country']}: {_fmt(g['carbon_intensity_g_per_kwh'])} gCO2e/kWh x PUE "
              f"{_fmt(g['carbon_pue'])}; source: {g['carbon_source']}")
    from llem.results.view import render

    rows = [[str(r["job_id"]), _fmt(r["carbon_gco2e"]), _fmt(r["carbon_gco2e_per_output_token"]),
             "" if _isna(r["carbon_not_computed_reason"]) else str(r["carbon_not_computed_reason"])]
            for r in df.to_dict("records")]
    print(render(["job_id", "carbon_gco2e", "carbon_gco2e_per_output_token", "note"], rows))


# --- compare ------------------------------------------------------------------------------------

def _compare(args) -> int:
    from llem.results.compare import compare_frames
    from llem.results.view import compare_text

    la, a = _load(args.a, args.quiet)
    lb, b = _load(args.b, args.quiet)
    cmp = compare_frames(a, b, args.metric)
    print(compare_text(cmp, (la, a), (lb, b)))
    return 0


# --- export -------------------------------------------------------------------------------------

def _export(args) -> int:
    from llem.results.export import check_format, default_out, export_table

    fmt = check_format(args.format)
    loaded, df = _load(args.path, args.quiet)
    df = _with_carbon(df, args)
    out = Path(args.out) if args.out else default_out(loaded.path, fmt)
    if fmt == "leaderboard":
        from llem.results.leaderboard import study_args, write_leaderboard

        sp, ip = write_leaderboard(df, out, **study_args(loaded), loaded=loaded)
        print(sp)
        print(ip)
        return 0
    meta = {"source": str(loaded.path), "kind": loaded.kind}
    if loaded.study is not None:
        meta.update({"study_name": loaded.study.study_name, "study_design_hash": loaded.study.study_design_hash})
    print(export_table(df, fmt, out, meta))
    return 0


# --- site ---------------------------------------------------------------------------------------

def _site(args) -> int:
    import tempfile

    from llem.results.site import build_site, make_server, serve

    def load(p):
        loaded, df = _load(p, args.quiet)
        return loaded, df

    tmp = None
    out = Path(args.out) if args.out else None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="llem-site-")
        out = Path(tmp.name)
    try:
        server = make_server(out, args.port) if args.serve else None  # a busy port fails before writing
        info = build_site(args.paths, out, load=load, quiet=args.quiet)
        print(info.out)
        if server is None:
            return 0

        def ready(url: str) -> None:
            print(f"serving {info.out} at {url} (Ctrl-C stops)", flush=True)

        import signal

        def stop(signum, frame):  # SIGTERM ends the server like Ctrl-C: the temporary site is removed
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)

        try:
            serve(server, ready)
        except KeyboardInterrupt:
            print("llem results site: stopped", file=sys.stderr)
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


# --- plot ---------------------------------------------------------------------------------------

def _plot(args) -> int:
    from llem.results.plots import write_plots
    from llem.results.progress import Progress

    loaded, df = _load(args.path, args.quiet)
    out = Path(args.out) if args.out else loaded.path / "plots"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {str(out)!r} is a file; plot writes a directory of PNGs", field="out",
                          value=str(out), allowed="a directory")
    plots = write_plots(loaded, df, out, progress=Progress("plotting", quiet=args.quiet))
    for p in plots:
        if p.path is not None:
            print(f"wrote {p.path}")
        else:
            print(f"skipped {p.name}: {p.skipped}")
    return 0


# --- push ---------------------------------------------------------------------------------------

def _push(args) -> int:
    from llem.results.remote import push

    ans = push(args.path, args.to, timeseries=not args.no_timeseries, quiet=args.quiet)
    base = ans["base_url"]
    print(f"{ans['message']} (study {ans['study_id']}, owner {ans['owner']}, unverified upload)")
    print(f"{base}{ans['study_url']}")
    print(f"{base}{ans['leaderboard_url']}")
    if ans.get("without_result") and not args.quiet:
        print(f"llem results push: {len(ans['without_result'])} job(s) have no readable result.json yet "
              f"({', '.join(ans['without_result'][:8])}{' ...' if len(ans['without_result']) > 8 else ''}); "
              "push again once they finish", file=sys.stderr)
    return 0
