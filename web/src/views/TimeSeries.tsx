import { scaleLinear } from "d3-scale";
import { fmtNum } from "../data/format";
import type { Timeseries, TimeseriesGpu } from "../data/types";

const W = 760;
const H = 200;
const M = { top: 12, right: 16, bottom: 34, left: 64 };
const COLORS = ["#1f5fa8", "#b3461b", "#2a7a3b", "#6b3fa0", "#8a6d00", "#0f6f78", "#a2245e", "#4d4d4d"];

type Series = "power_w" | "temperature_c" | "sm_clock_mhz";

export const PANELS: { key: Series; label: string; unit: string }[] = [
  { key: "power_w", label: "GPU power", unit: "W" },
  { key: "temperature_c", label: "GPU temperature", unit: "°C" },
  { key: "sm_clock_mhz", label: "SM clock", unit: "MHz" },
];

/** An SVG path through (t, v), broken where a value is missing (a gap stays a gap). */
export function linePath(t: (number | null)[], v: (number | null)[], x: (n: number) => number, y: (n: number) => number): string {
  let d = "";
  let pen = false;
  for (let i = 0; i < t.length; i++) {
    const ti = t[i];
    const vi = v[i];
    if (ti === null || vi === null || ti === undefined || vi === undefined) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${x(ti).toFixed(1)},${y(vi).toFixed(1)}`;
    pen = true;
  }
  return d;
}

function Panel({ ts, panel }: { ts: Timeseries; panel: (typeof PANELS)[number] }) {
  const gpus = ts.gpus.filter((g) => (g[panel.key] ?? []).some((v) => v !== null));
  if (!gpus.length) return null;
  const allT = gpus.flatMap((g) => g.t_s.filter((v): v is number => v !== null));
  const allV = gpus.flatMap((g) => [...(g[panel.key] ?? []), ...(panel.key === "power_w" ? [...(g.power_w_min ?? []), ...(g.power_w_max ?? [])] : [])]
    .filter((v): v is number => v !== null));
  const tmin = Math.min(...allT);
  const tmax = Math.max(...allT);
  const vmin = Math.min(...allV);
  const vmax = Math.max(...allV);
  const x = scaleLinear().domain([tmin, tmax > tmin ? tmax : tmin + 1]).range([M.left, W - M.right]);
  const pad = vmax > vmin ? (vmax - vmin) * 0.1 : Math.max(1, Math.abs(vmax) * 0.05);
  const y = scaleLinear().domain([Math.max(0, vmin - pad), vmax + pad]).range([H - M.bottom, M.top]).nice();
  const windows = (ts.measured_windows_s ?? []).filter(([a, b]) => b >= tmin && a <= tmax);
  return (
    <figure className="ts-panel">
      <svg className="chart timeseries" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${panel.label} (${panel.unit}) over time`}
        data-testid={`timeseries-${panel.key}`}>
        <g className="windows">
          {windows.map(([a, b], i) => (
            <rect key={i} className="window" x={x(Math.max(a, tmin))} y={M.top} width={Math.max(1, x(Math.min(b, tmax)) - x(Math.max(a, tmin)))}
              height={H - M.bottom - M.top}><title>{`measured cycle ${i}: ${fmtNum(a)}–${fmtNum(b)} s`}</title></rect>
          ))}
        </g>
        <g className="grid" aria-hidden="true">
          {x.ticks(8).map((t) => (
            <g key={`x${t}`}>
              <line x1={x(t)} x2={x(t)} y1={M.top} y2={H - M.bottom} />
              <text x={x(t)} y={H - M.bottom + 14} textAnchor="middle">{fmtNum(t, 3)}</text>
            </g>
          ))}
          {y.ticks(4).map((t) => (
            <g key={`y${t}`}>
              <line x1={M.left} x2={W - M.right} y1={y(t)} y2={y(t)} />
              <text x={M.left - 6} y={y(t) + 4} textAnchor="end">{fmtNum(t, 3)}</text>
            </g>
          ))}
          <text x={(M.left + W - M.right) / 2} y={H - 4} textAnchor="middle">seconds since the experiment started</text>
          <text transform={`translate(14 ${(M.top + H - M.bottom) / 2}) rotate(-90)`} textAnchor="middle">{panel.unit}</text>
        </g>
        {gpus.map((g: TimeseriesGpu, i) => (
          <g key={`${g.gpu_index}-${i}`}>
            {panel.key === "power_w" && g.power_w_min && g.power_w_max ? (
              <path className="band" fill={COLORS[i % COLORS.length]}
                d={linePath(g.t_s, g.power_w_max, x, y) + linePath([...g.t_s].reverse(), [...g.power_w_min].reverse(), x, y).replace(/^M/, "L") + "Z"} />
            ) : null}
            <path className="series" stroke={COLORS[i % COLORS.length]} data-points={g.points}
              d={linePath(g.t_s, g[panel.key] ?? [], x, y)} />
          </g>
        ))}
      </svg>
      <figcaption>
        {panel.label} ({panel.unit}){" "}
        {gpus.map((g, i) => (
          <span key={i} className="key"><span className="swatch" style={{ background: COLORS[i % COLORS.length] }} aria-hidden="true" /> GPU {g.gpu_index ?? i}{" "}</span>
        ))}
        <span className="key"><span className="swatch window-swatch" aria-hidden="true" /> measured cycles</span>
      </figcaption>
    </figure>
  );
}

export function TimeSeries({ ts }: { ts: Timeseries }) {
  if (!ts.gpus.length) {
    return <p className="muted" data-testid="timeseries-missing">No time series: {ts.not_available_reason ?? "none recorded"}.</p>;
  }
  const n = ts.gpus.reduce((a, g) => a + g.samples, 0);
  return (
    <div data-testid="timeseries">
      {PANELS.map((p) => <Panel key={p.key} ts={ts} panel={p} />)}
      <p className="muted">
        {n} samples{ts.downsampled ? `, downsampled to at most ${ts.gpus.reduce((a, g) => Math.max(a, g.points), 0)} points per GPU (${ts.method})` : ""}.
      </p>
    </div>
  );
}
