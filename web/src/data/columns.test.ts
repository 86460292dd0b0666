import { describe, expect, it } from "vitest";
import { COLUMNS, entry, QUALITY_COLUMNS, study } from "./__fixtures__/docs";
import { columnValue, energyMissingReason, tableColumns } from "./columns";
import { buildDataset } from "./load";

describe("table columns", () => {
  it("the headline columns in order; study only with several studies; quality columns when present", () => {
    const one = buildDataset("x", [{ url: "http://h/a.json", doc: study("a", "A", [entry("0")]) }]);
    const ids = tableColumns(one).map((c) => c.id);
    expect(ids).toEqual(["rank", "model", "backend", "precision", "batch", "gpu_name", "energy_per_output_token_j",
      "energy_adjusted_per_output_token_j", "tokens_per_joule", "output_tokens_per_s", "ttft_ms_p50", "ttft_ms_p99",
      "itl_ms_p50", "itl_ms_p99"]);
    const two = buildDataset("x", [{ url: "http://h/a.json", doc: study("a", "A", [entry("0")]) },
      { url: "http://h/b.json", doc: study("b", "B", [entry("0")], [...COLUMNS, ...QUALITY_COLUMNS]) }]);
    const cols = tableColumns(two);
    expect(cols.map((c) => c.id)).toContain("study");
    const q = cols.filter((c) => c.quality);
    expect(q.map((c) => [c.id, c.label])).toEqual([["quality_easy_mc_acc", "easy_mc acc"], ["quality_easy_mc_per_joule", "easy_mc correct/J"]]);
  });
  it("a missing metric has no value (null, never 0) and the energy says why", () => {
    const ds = buildDataset("x", [{ url: "http://h/a.json", doc: study("a", "A", [
      entry("0", { j: null }),
      entry("1", { j: null, status: "failed", error: { type: "OutOfMemoryError", message: "CUDA out of memory" } }),
    ]) }]);
    const col = { id: "energy_per_output_token_j", kind: "metric" as const };
    expect(columnValue(ds.rows[0], col)).toBeNull();
    expect(energyMissingReason(ds.rows[0])).toBe("energy=none was requested");
    expect(energyMissingReason(ds.rows[1])).toBe("job failed (OutOfMemoryError: CUDA out of memory)");
  });
});
