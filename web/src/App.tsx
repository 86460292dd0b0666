import { lazy, Suspense, useEffect, useMemo, useRef, useState } from "react";
import { tableColumns } from "./data/columns";
import { applyFilters, sortRows } from "./data/filter";
import { dataset, setting } from "./boot";
import type { Dataset } from "./data/types";
import { formatHash, parseHash, type ViewState } from "./data/urlstate";
import { useHash } from "./router";
import { Leaderboard } from "./views/Leaderboard";

// the charts (and d3-scale) load when a chart view is opened: the leaderboard's first render waits
// only for the table's code
const ParetoView = lazy(() => import("./views/Pareto").then((m) => ({ default: m.ParetoView })));
const JobPage = lazy(() => import("./views/JobPage").then((m) => ({ default: m.JobPage })));
const Compare = lazy(() => import("./views/Compare").then((m) => ({ default: m.Compare })));

type Load = { state: "loading" } | { state: "error"; message: string } | { state: "ready"; ds: Dataset };

/** performance.mark("llem:first-render") once the first data has been painted (benchmarks/web/
 * reads it): after the commit, the next frame, and a task after that frame's paint. */
function markFirstRender() {
  requestAnimationFrame(() => setTimeout(() => {
    performance.mark("llem:first-render");
    document.documentElement.dataset.llemReady = "1";
  }, 0));
}

function Tabs({ state, nSel }: { state: ViewState; nSel: number }) {
  const tabs: [ViewState["view"], string][] = [["table", "Leaderboard"], ["pareto", "Pareto"], ["compare", `Compare (${nSel})`]];
  return (
    <nav className="tabs" aria-label="Views">
      {tabs.map(([v, label]) => (
        <a key={v} href={formatHash({ ...state, view: v, job: null })} aria-current={state.view === v ? "page" : undefined}>
          {label}
        </a>
      ))}
    </nav>
  );
}

export function App() {
  const hash = useHash();
  const state = useMemo(() => parseHash(hash), [hash]);
  const { url, note } = setting;
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const marked = useRef(false);
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    dataset.then((ds) => setLoad({ state: "ready", ds }), (err: Error) => setLoad({ state: "error", message: err.message }));
  }, []);

  const ds = load.state === "ready" ? load.ds : null;
  const columns = useMemo(() => (ds ? tableColumns(ds) : []), [ds]);
  const filtered = useMemo(() => (ds ? applyFilters(ds.rows, state) : []), [ds, state.filters, state.q]); // eslint-disable-line react-hooks/exhaustive-deps
  const sorted = useMemo(() => {
    const col = state.sort ? columns.find((c) => c.id === state.sort) ?? null : null;
    return sortRows(filtered, col, state.dir);
  }, [filtered, columns, state.sort, state.dir]);

  useEffect(() => {
    if (ds && !marked.current) {
      marked.current = true;
      markFirstRender();
    }
  }, [ds]);

  // a new view: its heading gets focus (screen readers announce it; Tab continues from there)
  const viewKey = `${state.view}|${state.job ?? ""}`;
  const lastView = useRef(viewKey);
  useEffect(() => {
    if (lastView.current !== viewKey) {
      lastView.current = viewKey;
      main.current?.querySelector<HTMLElement>("h2")?.focus();
      window.scrollTo(0, 0);
    }
  }, [viewKey]);

  const row = ds && state.job ? ds.rows.find((r) => r.key === state.job) : undefined;
  useEffect(() => {
    document.title = state.view === "job" && row ? `${row.entry.label} · llem leaderboard`
      : state.view === "pareto" ? "Pareto · llem leaderboard" : state.view === "compare" ? "Compare · llem leaderboard" : "llem leaderboard";
  }, [state.view, row]);

  const synthetic = ds ? ds.rows.filter((r) => r.entry.synthetic).length : 0;
  const estimated = ds ? ds.rows.filter((r) => r.entry.energy_estimated).length : 0;
  const generators = ds ? Array.from(new Set(ds.studies.map((s) => s.generator ? `${s.generator.name} ${s.generator.version}` : null).filter(Boolean))) : [];
  const versions = ds ? Array.from(new Set(ds.studies.map((s) => s.schema_version))) : [];

  return (
    <>
      <a className="skip" href={formatHash(state)} onClick={(ev) => { ev.preventDefault(); main.current?.focus(); }}>Skip to content</a>
      <header className="top">
        <h1><a href={formatHash({ ...state, view: "table", job: null })}>llem leaderboard</a></h1>
        <p className="sub">Energy per output token of LLM inference, with 95% confidence intervals, raw and baseline-adjusted.</p>
        <Tabs state={state} nSel={state.sel.length} />
      </header>
      {note ? <p className="banner" role="alert">{note}</p> : null}
      {synthetic ? (
        <p className="banner banner-synthetic" data-testid="synthetic-banner">
          {synthetic} of {ds!.rows.length} entries are synthetic test data (labelled <span className="badge badge-synthetic">synthetic</span>):
          their energy values are fabricated, not measured.
        </p>
      ) : null}
      {estimated ? (
        <p className="banner banner-estimated">
          {estimated} {estimated === 1 ? "entry has" : "entries have"} estimated energy (labelled <span className="badge badge-estimated">estimated</span>),
          not read from a hardware counter.
        </p>
      ) : null}
      {ds && ds.errors.length ? (
        <div className="banner" role="alert">
          Some data could not be read:
          <ul>{ds.errors.map((e, i) => <li key={i}>{e}</li>)}</ul>
        </div>
      ) : null}
      <main id="main" ref={main} tabIndex={-1}>
        {load.state === "loading" ? <p role="status">Loading {url}…</p> : null}
        {load.state === "error" ? (
          <div role="alert" className="banner">
            <p>Could not read the leaderboard data: {load.message}</p>
            <p>The page reads {url}; serve the site folder over HTTP (for example <code>llem results site DIR --serve</code>).</p>
          </div>
        ) : null}
        {ds && state.view === "table" ? <Leaderboard ds={ds} rows={sorted} columns={columns} state={state} /> : null}
        <Suspense fallback={<p role="status">Loading…</p>}>
          {ds && state.view === "pareto" ? <ParetoView ds={ds} rows={sorted} state={state} /> : null}
          {ds && state.view === "compare" ? <Compare ds={ds} state={state} /> : null}
          {ds && state.view === "job" ? <JobPage ds={ds} row={row} state={state} /> : null}
        </Suspense>
      </main>
      <footer>
        {ds ? (
          <p>
            {ds.rows.length} entries from {ds.studies.length} {ds.studies.length === 1 ? "study" : "studies"} · data{" "}
            <a href={ds.source}>{ds.source.split("/").pop()}</a> · written by {generators.join(", ") || "llem"} · leaderboard
            schema {versions.join(", ")}
          </p>
        ) : null}
        <p>Every view is in this page&apos;s address: copy it to share exactly what you see.</p>
      </footer>
    </>
  );
}
