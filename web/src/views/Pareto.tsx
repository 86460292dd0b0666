import { scaleLinear, scaleLog } from "d3-scale";
import { useMemo } from "react";
import { fmtNum, fmtWithCi } from "../data/format";
import { paretoPoints, yOptions, type Point } from "../data/pareto";
import type { Dataset, Row } from "../data/types";
import { formatHash, update, type ViewState } from "../data/urlstate";
import { navigate } from "../router";
import { jobHref } from "./common";
import { Filters } from "./Filters";

const W = 760;
const H = 460;
const M = { top: 16, right: 20, bottom: 52, left: 72 };

type Scale = ((v: number) => number) & { ticks: (n?: number) => number[] };

/** Log scale when the values span a factor of 8 or more (and are all positive), else linear. */
export function makeScale(values: number[], range: [number, number]): { scale: Scale; log: boolean } {
  const v = values.filter((x) => Number.isFinite(x));
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  if (!v.length) {
    lo = 0;
    hi = 1;
  }
  const log = lo > 0 && hi / lo >= 8;
  if (log) {
    const s = scaleLog().domain([lo / 1.15, hi * 1.15]).range(range);
    return { scale: s as unknown as Scale, log };
  }
  const pad = hi > lo ? (hi - lo) * 0.08 : Math.abs(hi) * 0.1 || 1;
  const s = scaleLinear().domain([lo - pad, hi + pad]).range(range).nice();
  return { scale: s as unknown as Scale, log };
}

function tickValues(scale: Scale, log: boolean): number[] {
  const t = scale.ticks(log ? 6 : 6);
  if (!log || t.length <= 8) return t;
  // a log scale's ticks include every 2..9 multiple: keep the 1, 2 and 5 ones
  return t.filter((x) => [1, 2, 5].includes(Math.round(x / 10 ** Math.floor(Math.log10(x) + 1e-9))));
}

export function ParetoChart({ points, yLabel, state, title }: { points: Point[]; yLabel: string; state: ViewState; title: string }) {
  const xs = points.flatMap((p) => [p.x, p.xLo ?? p.x, p.xHi ?? p.x]);
  const ys = points.flatMap((p) => [p.y, p.yLo ?? p.y, p.yHi ?? p.y]);
  const { scale: x, log: xlog } = makeScale(xs, [M.left, W - M.right]);
  const { scale: y, log: ylog } = makeScale(ys, [H - M.bottom, M.top]);
  const front = points.filter((p) => p.frontier).sort((a, b) => a.x - b.x);
  const cap = 3;
  return (
    <svg className="chart pareto" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="pareto-title pareto-desc"
      data-testid="pareto-chart" preserveAspectRatio="xMidYMid meet">
      <title id="pareto-title">{title}</title>
      <desc id="pareto-desc">
        {`${points.length} ranked entries; ${front.length} on the frontier. Error bars: 95% confidence intervals on both axes.`}
      </desc>
      <g className="grid" aria-hidden="true">
        {tickValues(x, xlog).map((t) => (
          <g key={`x${t}`}>
            <line x1={x(t)} x2={x(t)} y1={M.top} y2={H - M.bottom} />
            <text x={x(t)} y={H - M.bottom + 16} textAnchor="middle">{fmtNum(t, 3)}</text>
          </g>
        ))}
        {tickValues(y, ylog).map((t) => (
          <g key={`y${t}`}>
            <line x1={M.left} x2={W - M.right} y1={y(t)} y2={y(t)} />
            <text x={M.left - 6} y={y(t) + 4} textAnchor="end">{fmtNum(t, 3)}</text>
          </g>
        ))}
      </g>
      <g className="axis-labels" aria-hidden="true">
        <text x={(M.left + W - M.right) / 2} y={H - 10} textAnchor="middle">
          {`Energy per output token (J, lower is better${xlog ? ", log scale" : ""})`}
        </text>
        <text transform={`translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)`} textAnchor="middle">
          {`${yLabel} (higher is better${ylog ? ", log scale" : ""})`}
        </text>
      </g>
      {front.length > 1 ? (
        <polyline className="frontier-line" data-testid="frontier" points={front.map((p) => `${x(p.x)},${y(p.y)}`).join(" ")} />
      ) : null}
      <g className="errbars">
        {points.map((p) => (
          <g key={p.row.key} className="errbar" data-key={p.row.key}>
            {p.xLo !== null && p.xHi !== null ? (
              <path className="err-x" d={`M${x(p.xLo)},${y(p.y)}H${x(p.xHi)}M${x(p.xLo)},${y(p.y) - cap}V${y(p.y) + cap}M${x(p.xHi)},${y(p.y) - cap}V${y(p.y) + cap}`} />
            ) : null}
            {p.yLo !== null && p.yHi !== null ? (
              <path className="err-y" d={`M${x(p.x)},${y(p.yLo)}V${y(p.yHi)}M${x(p.x) - cap},${y(p.yLo)}H${x(p.x) + cap}M${x(p.x) - cap},${y(p.yHi)}H${x(p.x) + cap}`} />
            ) : null}
          </g>
        ))}
      </g>
      <g className="points">
        {points.map((p) => (
          <a key={p.row.key} href={jobHref(state, p.row.key)} tabIndex={-1}>
            <circle className={`point${p.frontier ? " on-frontier" : ""}${p.estimated ? " estimated" : ""}`}
              data-testid="point" data-key={p.row.key} cx={x(p.x)} cy={y(p.y)} r={p.frontier ? 5.5 : 4}>
              <title>
                {`${p.row.entry.label} (${p.row.study.name}, job ${p.row.entry.job_id})${p.frontier ? ", on the frontier" : ""}` +
                  `${p.estimated ? ", estimated energy" : ""}${p.synthetic ? ", synthetic data" : ""}\n` +
                  `J/token ${fmtWithCi(p.x, p.xLo, p.xHi)}\n${yLabel} ${fmtWithCi(p.y, p.yLo, p.yHi)}`}
              </title>
            </circle>
          </a>
        ))}
      </g>
    </svg>
  );
}

export function ParetoView({ ds, rows, state }: { ds: Dataset; rows: Row[]; state: ViewState }) {
  const options = yOptions(ds);
  const yopt = options.find((o) => o.key === state.y) ?? options[0];
  const { points, excluded } = useMemo(() => paretoPoints(rows, yopt.key), [rows, yopt.key]);
  const front = points.filter((p) => p.frontier).sort((a, b) => a.x - b.x);
  const yLabel = yopt.key === "output_tokens_per_s" ? "Throughput (output tokens/s)" : yopt.label.replace(/^Quality: /, "");
  const title = `${yLabel} vs energy per output token`;
  return (
    <section aria-labelledby="pareto-h">
      <h2 id="pareto-h" tabIndex={-1}>Pareto: {title}</h2>
      <Filters rows={ds.rows} state={state} />
      {options.length > 1 ? (
        <p>
          <label>
            y axis{" "}
            <select value={yopt.key} onChange={(ev) => navigate(formatHash(update(state, { y: ev.target.value })))}>
              {options.map((o) => <option key={o.key} value={o.key}>{o.label}</option>)}
            </select>
          </label>
        </p>
      ) : null}
      <p role="status" data-testid="pareto-count">
        {points.length} ranked {points.length === 1 ? "entry" : "entries"} plotted
        {excluded.length ? `; ${excluded.length} not plotted (listed below)` : ""}.
      </p>
      {points.length ? <div className="chart-wrap"><ParetoChart points={points} yLabel={yLabel} state={state} title={title} /></div>
        : <p className="muted">Nothing to plot: no entry in this view has measured energy and {yLabel}.</p>}
      <p className="muted">
        Each point is one ranked entry; bars are 95% confidence intervals on both axes; the line joins the frontier
        (entries no other entry beats on both). Hollow points: estimated energy.
      </p>
      {front.length ? (
        <>
          <h3>Frontier</h3>
          <ol className="frontier-list">
            {front.map((p) => (
              <li key={p.row.key}>
                <a href={jobHref(state, p.row.key)}>{p.row.entry.label}</a> ({p.row.study.name}): {fmtWithCi(p.x, p.xLo, p.xHi)} J/token,{" "}
                {fmtWithCi(p.y, p.yLo, p.yHi)} {yopt.unit ?? ""}
              </li>
            ))}
          </ol>
        </>
      ) : null}
      {excluded.length ? (
        <details>
          <summary>Not plotted ({excluded.length})</summary>
          <ul data-testid="not-plotted">
            {excluded.map((e) => (
              <li key={e.row.key}><a href={jobHref(state, e.row.key)}>{e.row.entry.label}</a> ({e.row.study.name}, job {e.row.entry.job_id}): {e.reason}</li>
            ))}
          </ul>
        </details>
      ) : null}
    </section>
  );
}
