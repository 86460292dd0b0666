import { plainValue } from "../data/flatten";
import { fmtNum, isMissing } from "../data/format";
import type { Column, Dataset, Row } from "../data/types";
import { formatHash, MAX_COMPARE, toggleSelection, type ViewState } from "../data/urlstate";
import { EnergyCell, EntryBadges, jobHref, MetricValue } from "./common";

const CONFIG_ROWS: [string, string][] = [
  ["backend", "backend"], ["backend_version", "backend version"], ["model", "model"], ["precision", "precision"],
  ["batch", "batch"], ["gpu_name", "GPU"], ["input_len", "input tokens"], ["output_len", "output tokens"],
  ["num_prompts", "prompts"], ["dataset", "dataset"], ["device", "device"],
];

/** 2-4 selected entries side by side: config (differences marked), then every metric with its
 * interval and its ratio to the first entry. */
export function Compare({ ds, state }: { ds: Dataset; state: ViewState }) {
  const byKey = new Map(ds.rows.map((r) => [r.key, r]));
  const rows = state.sel.map((k) => byKey.get(k)).filter((r): r is Row => r !== undefined);
  const missing = state.sel.filter((k) => !byKey.has(k));
  const back = formatHash({ ...state, view: "table" });
  if (rows.length < 2) {
    return (
      <section aria-labelledby="cmp-h">
        <h2 id="cmp-h" tabIndex={-1}>Compare</h2>
        <p>Select 2 to {MAX_COMPARE} entries with the checkboxes of the <a href={back}>leaderboard</a> to compare them side by side.</p>
        {missing.length ? <p className="missing">Not in this leaderboard: {missing.join(", ")}</p> : null}
      </section>
    );
  }
  const metricCols: Column[] = ds.columns.filter((c) => c.group !== "config" && rows.some((r) => r.entry.metrics?.[c.key] !== undefined));
  const base = rows[0];
  return (
    <section aria-labelledby="cmp-h">
      <h2 id="cmp-h" tabIndex={-1}>Compare {rows.length} entries</h2>
      {missing.length ? <p className="missing">Not in this leaderboard: {missing.join(", ")}</p> : null}
      <div className="table-wrap" role="region" aria-label="Comparison, scrolls sideways" tabIndex={0}>
        <table className="grid-table compare" data-testid="compare">
          <thead>
            <tr>
              <th scope="col">entry</th>
              {rows.map((r) => (
                <th key={r.key} scope="col">
                  <a href={jobHref(state, r.key)}>{r.entry.label}</a> <EntryBadges row={r} />
                  <div className="muted">{r.study.name} · job {r.entry.job_id}</div>
                  <a className="small" href={formatHash({ ...state, sel: toggleSelection(state.sel, r.key) })}>remove</a>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            <tr><th scope="row">status</th>{rows.map((r) => <td key={r.key}>{plainValue(r.entry.status)}</td>)}</tr>
            <tr><th scope="row">rank in study</th>{rows.map((r) => <td key={r.key}>{r.entry.rank ?? "unranked"}</td>)}</tr>
            {CONFIG_ROWS.map(([k, label]) => {
              const vals = rows.map((r) => plainValue(r.entry.config?.[k]));
              const differs = new Set(vals).size > 1;
              return (
                <tr key={k} className={differs ? "differs" : undefined}>
                  <th scope="row">{label}{differs ? <span className="sr-only"> (differs)</span> : null}{differs ? <span aria-hidden="true"> ≠</span> : null}</th>
                  {vals.map((v, i) => <td key={rows[i].key}>{v}</td>)}
                </tr>
              );
            })}
            <tr><th scope="row">energy meter</th>{rows.map((r) => <td key={r.key}>{plainValue(r.entry.energy_meter)}{r.entry.energy_estimated ? " (estimated)" : ""}</td>)}</tr>
            {metricCols.map((c) => (
              <tr key={c.key}>
                <th scope="row" title={c.description}>{c.label}{c.unit ? ` (${c.unit})` : ""}</th>
                {rows.map((r, i) => {
                  const m = r.entry.metrics?.[c.key];
                  const b = base.entry.metrics?.[c.key]?.value;
                  // a ratio only between two positive values (an adjusted energy can be negative: no ratio means anything)
                  const ratio = i > 0 && m && !isMissing(m.value) && !isMissing(b) && b > 0 && m.value > 0 ? m.value / b : null;
                  return (
                    <td key={r.key}>
                      {c.key === "energy_per_output_token_j" ? <EnergyCell row={r} metric={c.key} /> : <MetricValue m={m} />}
                      {ratio !== null ? <span className="muted ratio"> ×{fmtNum(ratio, 3)} vs first</span> : null}
                    </td>
                  );
                })}
              </tr>
            ))}
            <tr><th scope="row">warnings</th>{rows.map((r) => <td key={r.key}>{r.entry.warnings.length}</td>)}</tr>
          </tbody>
        </table>
      </div>
      <p className="muted">Intervals are 95% confidence intervals; where two intervals overlap, the entries may not differ.</p>
    </section>
  );
}
