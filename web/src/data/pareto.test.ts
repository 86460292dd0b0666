import { describe, expect, it } from "vitest";
import { COLUMNS, entry, QUALITY_COLUMNS, study } from "./__fixtures__/docs";
import { buildDataset } from "./load";
import { frontierIndices, paretoPoints, yOptions } from "./pareto";

describe("the frontier", () => {
  it("keeps the points no other beats on both (lower x, higher y)", () => {
    // (x, y): A(1,10) B(2,20) C(3,15) D(4,30) E(2,5)
    expect(frontierIndices([1, 2, 3, 4, 2], [10, 20, 15, 30, 5]).sort()).toEqual([0, 1, 3]);
  });
  it("of two points at the same x only the higher is on it", () => {
    expect(frontierIndices([1, 1], [5, 9])).toEqual([1]);
  });
});

describe("Pareto points", () => {
  const ds = buildDataset("x", [{ url: "http://h/a.json", doc: study("a", "A", [
    entry("0000", { j: 0.5, tps: 100 }), entry("0001", { j: 0.2, tps: 300, energy_estimated: true }),
    entry("0002", { j: null }), entry("0003", { j: 0.4, tps: null }),
    entry("0004", { j: 0.3, tps: 50, status: "completed" }),
  ]) }]);
  it("one point per ranked entry with a y value, each with its intervals; the rest listed with why", () => {
    const { points, excluded } = paretoPoints(ds.rows, "output_tokens_per_s");
    expect(points.map((p) => p.row.entry.job_id)).toEqual(["0000", "0001", "0004"]);
    expect(points[0]).toMatchObject({ x: 0.5, xLo: 0.45, y: 100, yHi: 105 });
    expect(points.find((p) => p.row.entry.job_id === "0001")).toMatchObject({ frontier: true, estimated: true });
    expect(points.filter((p) => p.frontier).map((p) => p.row.entry.job_id)).toEqual(["0001"]);
    expect(excluded.map((e) => [e.row.entry.job_id, e.reason])).toEqual([
      ["0002", "energy=none was requested"], ["0003", "no output_tokens_per_s: not recorded"]]);
  });
  it("a quality score can be the y axis when the studies carry one", () => {
    expect(yOptions({ columns: COLUMNS }).map((o) => o.key)).toEqual(["output_tokens_per_s"]);
    const opts = yOptions({ columns: [...COLUMNS, ...QUALITY_COLUMNS] });
    expect(opts.map((o) => o.key)).toEqual(["output_tokens_per_s", "quality_easy_mc_acc"]);
    const q = buildDataset("x", [{ url: "http://h/q.json", doc: study("q", "Q", [
      entry("0000", { j: 0.5, metrics: { energy_per_output_token_j: { value: 0.5, ci95_low: 0.4, ci95_high: 0.6 },
        quality_easy_mc_acc: { value: 0.7, stderr: 0.05, ci95_low: 0.602, ci95_high: 0.798, n: 80 } } }),
    ], [...COLUMNS, ...QUALITY_COLUMNS]) }]);
    const { points } = paretoPoints(q.rows, "quality_easy_mc_acc");
    expect(points).toHaveLength(1);
    expect(points[0]).toMatchObject({ y: 0.7, yLo: 0.602, yHi: 0.798, frontier: true });
  });
});
