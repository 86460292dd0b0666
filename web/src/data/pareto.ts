// Pareto charts: one point per ranked entry, with its 95% intervals on both axes, and the
// frontier: the entries no other entry beats on both (lower J/token, higher y). The same rule as
// `llem results plot` (llem/results/plots.py, pareto_frontier).

import { energyMissingReason, RANK_METRIC } from "./columns";
import type { Dataset, Row } from "./types";

export interface Point {
  row: Row;
  x: number;
  xLo: number | null;
  xHi: number | null;
  y: number;
  yLo: number | null;
  yHi: number | null;
  frontier: boolean;
  estimated: boolean;
  synthetic: boolean;
}

export interface Excluded {
  row: Row;
  reason: string;
}

export interface YOption {
  key: string;
  label: string;
  unit: string | null;
}

function finite(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** The y metrics a Pareto chart can use: throughput, and each quality score the studies carry. */
export function yOptions(ds: Pick<Dataset, "columns">): YOption[] {
  const out: YOption[] = [{ key: "output_tokens_per_s", label: "Throughput (output tokens/s)", unit: "tokens/s" }];
  for (const c of ds.columns) {
    if (c.group === "quality" && !c.key.endsWith("_per_joule")) {
      out.push({ key: c.key, label: `Quality: ${c.label}`, unit: c.unit });
    }
  }
  return out;
}

/** Indices of the frontier among (x, y): sorted by x then -y, kept while y rises. */
export function frontierIndices(xs: number[], ys: number[]): number[] {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b] || ys[b] - ys[a]);
  const front: number[] = [];
  let best = -Infinity;
  for (const i of order) {
    if (ys[i] > best) {
      front.push(i);
      best = ys[i];
    }
  }
  return front;
}

/** Points for the ranked rows among `rows` (x: J/token, y: `yKey`), and the rows left out with why. */
export function paretoPoints(rows: Row[], yKey: string): { points: Point[]; excluded: Excluded[] } {
  const points: Point[] = [];
  const excluded: Excluded[] = [];
  for (const row of rows) {
    const e = row.entry;
    const xm = e.metrics?.[RANK_METRIC];
    const ym = e.metrics?.[yKey];
    if (e.rank === null || e.rank === undefined || !xm || !finite(xm.value) || xm.value <= 0) {
      excluded.push({ row, reason: energyMissingReason(row) ?? "not ranked" });
      continue;
    }
    if (!ym || !finite(ym.value)) {
      excluded.push({ row, reason: `no ${yKey}: ${ym?.not_measured_reason ?? "not recorded"}` });
      continue;
    }
    points.push({
      row, x: xm.value, xLo: finite(xm.ci95_low) ? xm.ci95_low : null, xHi: finite(xm.ci95_high) ? xm.ci95_high : null,
      y: ym.value, yLo: finite(ym.ci95_low) ? ym.ci95_low : null, yHi: finite(ym.ci95_high) ? ym.ci95_high : null,
      frontier: false, estimated: e.energy_estimated === true, synthetic: e.synthetic === true,
    });
  }
  for (const i of frontierIndices(points.map((p) => p.x), points.map((p) => p.y))) points[i].frontier = true;
  return { points, excluded };
}
