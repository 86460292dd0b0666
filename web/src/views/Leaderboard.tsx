import { columnValue, RANK_METRIC, type TableColumn } from "../data/columns";
import { toCsv, toJson } from "../data/csv";
import { paginate } from "../data/filter";
import { plainValue } from "../data/flatten";
import type { Dataset, Row } from "../data/types";
import { formatHash, MAX_COMPARE, PAGE_SIZES, toggleSelection, update, type ViewState } from "../data/urlstate";
import { navigate } from "../router";
import { download, EnergyCell, EntryBadges, jobHref, MetricValue } from "./common";
import { Filters } from "./Filters";

function SortHeader({ col, state }: { col: TableColumn; state: ViewState }) {
  // without a chosen column the table is in ranking order: J/token, lowest first
  const current = state.sort === col.id || (state.sort === null && col.id === RANK_METRIC);
  const sortState = current ? (state.dir === "desc" ? "descending" : "ascending") : "none";
  // first click: best first (highest for higher-is-better metrics); again: the other way
  const dir = current ? (state.dir === "asc" ? "desc" : "asc") : col.higherIsBetter ? "desc" : "asc";
  const arrow = current ? (state.dir === "desc" ? "▼" : "▲") : "";
  return (
    <th scope="col" aria-sort={sortState} title={col.title} className={col.kind === "metric" ? "numcol" : undefined}>
      <a className="sort" href={formatHash(update(state, { sort: col.id, dir }))}
        aria-label={`${col.label}: sort ${dir === "asc" ? "ascending" : "descending"}`}>
        {col.label}<span aria-hidden="true" className="arrow">{arrow}</span>
      </a>
    </th>
  );
}

function Cell({ row, col, state }: { row: Row; col: TableColumn; state: ViewState }) {
  const e = row.entry;
  if (col.kind === "rank") return <td className="rank" data-col={col.id}>{e.rank ?? <span className="muted" title="not ranked">—</span>}</td>;
  if (col.id === "model") {
    return (
      <td className="model" data-col={col.id}>
        <a href={jobHref(state, row.key)} data-testid="job-link">{plainValue(e.config?.model ?? e.label)}</a>{" "}
        <EntryBadges row={row} />
      </td>
    );
  }
  if (col.kind === "config" || col.kind === "study") {
    const v = columnValue(row, col);
    return <td className={col.id === "gpu_name" ? "gpu" : undefined} data-col={col.id}>{col.id === "gpu_name" && v === null ? <span className="muted">no GPU</span> : plainValue(v)}</td>;
  }
  // the reason energy is missing is spelled out once, in the J/token column; the adjusted column
  // spells out its own reason only when the raw energy was measured (e.g. no idle baseline)
  const rawMeasured = typeof e.metrics?.[RANK_METRIC]?.value === "number";
  if (col.id === RANK_METRIC || (col.id === "energy_adjusted_per_output_token_j" && rawMeasured)) {
    return <td className="numcol" data-col={col.id}><EnergyCell row={row} metric={col.id} /></td>;
  }
  return <td className="numcol" data-col={col.id}><MetricValue m={e.metrics?.[col.id]} /></td>;
}

function Pager({ state, page, pages }: { state: ViewState; page: number; pages: number }) {
  const at = (p: number) => formatHash(update(state, { page: p }));
  return (
    <nav className="pager" aria-label="Pages">
      {page > 1 ? <a href={at(1)}>« first</a> : <span className="muted">« first</span>}
      {page > 1 ? <a href={at(page - 1)} rel="prev">‹ previous</a> : <span className="muted">‹ previous</span>}
      <span aria-current="page">page {page} of {pages}</span>
      {page < pages ? <a href={at(page + 1)} rel="next">next ›</a> : <span className="muted">next ›</span>}
      {page < pages ? <a href={at(pages)}>last »</a> : <span className="muted">last »</span>}
      <label>
        rows per page{" "}
        <select value={state.size} onChange={(ev) => navigate(formatHash(update(state, { size: Number(ev.target.value) })))}>
          {PAGE_SIZES.map((n) => <option key={n} value={n}>{n}</option>)}
        </select>
      </label>
    </nav>
  );
}

export function Downloads({ ds, rows, columns, state }: { ds: Dataset; rows: Row[]; columns: TableColumn[]; state: ViewState }) {
  const stamp = new Date().toISOString().slice(0, 10);
  return (
    <div className="downloads">
      <button type="button" onClick={() => download(`llem-leaderboard-${stamp}.csv`, "text/csv;charset=utf-8", toCsv(rows, columns))}>
        Download CSV ({rows.length} rows)
      </button>
      <button type="button" onClick={() => download(`llem-leaderboard-${stamp}.json`, "application/json",
        toJson(rows, { source: ds.source, view: formatHash(state), generated_at: new Date().toISOString() }))}>
        Download JSON ({rows.length} entries)
      </button>
      <details className="raw">
        <summary>Raw JSON files</summary>
        <ul>
          <li><a href={ds.source} download>{ds.source.split("/").pop()}</a> (what this page reads)</li>
          {ds.studies.map((s, i) => (
            <li key={s.study.id}><a href={ds.studyUrls[i]} download>{ds.studyUrls[i].split("/").pop()}</a> (study {s.study.name})</li>
          ))}
        </ul>
      </details>
    </div>
  );
}

export function Leaderboard({ ds, rows, columns, state }: { ds: Dataset; rows: Row[]; columns: TableColumn[]; state: ViewState }) {
  const pg = paginate(rows, state.page, state.size);
  const sel = new Set(state.sel);
  const full = state.sel.length >= MAX_COMPARE;
  return (
    <section aria-labelledby="lb-title">
      <h2 id="lb-title" tabIndex={-1}>Leaderboard</h2>
      <Filters rows={ds.rows} state={state} />
      <div className="toolbar">
        <p role="status" data-testid="count">
          {rows.length === 0 ? "No entries match" : `Showing ${pg.first}–${pg.last} of ${rows.length} entries`}
          {rows.length !== ds.rows.length ? ` (${ds.rows.length} in all)` : ""}
        </p>
        <a className={`button${state.sel.length >= 2 ? "" : " disabled"}`} aria-disabled={state.sel.length < 2 || undefined}
          href={formatHash({ ...state, view: "compare" })}>
          Compare selected ({state.sel.length})
        </a>
        <Downloads ds={ds} rows={rows} columns={columns} state={state} />
      </div>
      <div className="table-wrap" role="region" aria-label="Leaderboard table, scrolls sideways" tabIndex={0}>
        <table className="leaderboard" data-testid="leaderboard">
          <caption className="sr-only">
            Entries ranked by energy per output token; intervals are 95% confidence intervals.
          </caption>
          <thead>
            <tr>
              <th scope="col"><span className="sr-only">Compare</span></th>
              {columns.map((c) => <SortHeader key={c.id} col={c} state={state} />)}
            </tr>
          </thead>
          <tbody>
            {pg.rows.map((r) => (
              <tr key={r.key} data-testid="row" data-key={r.key} className={r.entry.rank === null ? "unranked" : undefined}>
                <td>
                  <input type="checkbox" aria-label={`compare ${r.entry.label} (${r.study.name}, job ${r.entry.job_id})`}
                    checked={sel.has(r.key)} disabled={!sel.has(r.key) && full}
                    onChange={() => navigate(formatHash({ ...state, sel: toggleSelection(state.sel, r.key) }))} />
                </td>
                {columns.map((c) => <Cell key={c.id} row={r} col={c} state={state} />)}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {full ? <p className="muted">At most {MAX_COMPARE} entries can be compared; unselect one to pick another.</p> : null}
      <Pager state={state} page={pg.page} pages={pg.pages} />
      <Legend />
    </section>
  );
}

export function Legend() {
  return (
    <details className="legend">
      <summary>How to read this table</summary>
      <ul>
        <li><b>J/token</b>: raw GPU energy of the measured cycles divided by output tokens; <b>adj.</b> subtracts the idle
          baseline power × duration. Brackets hold the 95% confidence interval over the measured cycles.</li>
        <li><b>not measured</b>: no energy reading exists for that job; the reason is given. A missing value is never shown as 0.</li>
        <li><b>estimated</b>: energy modelled (e.g. CodeCarbon), not read from a hardware counter.</li>
        <li><b>synthetic</b>: fabricated test data (for example energy from llem&apos;s simulated NVML), not a measurement.</li>
        <li>Rank is within each study, lowest J/token first; unranked entries follow.</li>
      </ul>
    </details>
  );
}
