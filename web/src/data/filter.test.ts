import { describe, expect, it } from "vitest";
import { entry, study } from "./__fixtures__/docs";
import { tableColumns } from "./columns";
import { applyFilters, filterOptions, paginate, sortRows } from "./filter";
import { buildDataset } from "./load";
import { defaultState } from "./urlstate";

const ds = buildDataset("http://h/data/index.json", [
  { url: "http://h/data/a.json", doc: study("a", "study A", [entry("0000", { j: 0.5 }), entry("0001", { j: 0.2, gpu: "GPU B" }), entry("0002", { j: null })]) },
  { url: "http://h/data/b.json", doc: study("b", "study B", [entry("0000", { j: 0.3, gpu: null, config: { backend: "vllm", model: "llama-<8b>", precision: "fp16", batch: 8, gpu_name: null } })]) },
]);

describe("filters and search", () => {
  it("each filter lists its values with counts; a missing GPU is its own value", () => {
    expect(filterOptions(ds.rows, "gpu")).toEqual([
      { value: "GPU A", label: "GPU A", count: 2 }, { value: "GPU B", label: "GPU B", count: 1 },
      { value: "", label: "no GPU", count: 1 }]);
    expect(filterOptions(ds.rows, "study").map((o) => [o.value, o.label])).toEqual([["a", "study A"], ["b", "study B"]]);
  });
  it("values of one filter are OR-ed, filters AND-ed, search words AND-ed", () => {
    const s = defaultState();
    expect(applyFilters(ds.rows, { ...s, filters: { ...s.filters, gpu: ["GPU B", ""] } }).map((r) => r.key)).toEqual(["a/0001", "b/0000"]);
    expect(applyFilters(ds.rows, { ...s, filters: { ...s.filters, gpu: ["GPU A"], study: ["b"] } })).toEqual([]);
    expect(applyFilters(ds.rows, { ...s, q: "LLAMA fp16" }).map((r) => r.key)).toEqual(["b/0000"]);
    expect(applyFilters(ds.rows, { ...s, q: "llama bf16" })).toEqual([]);
    expect(applyFilters(ds.rows, s)).toHaveLength(4);
  });
});

describe("sorting", () => {
  const cols = tableColumns(ds);
  const col = (id: string) => cols.find((c) => c.id === id)!;
  it("the default order is the ranking: J/token lowest first, unmeasured last", () => {
    expect(sortRows(ds.rows, null, "asc").map((r) => r.key)).toEqual(["a/0001", "b/0000", "a/0000", "a/0002"]);
  });
  it("a missing value stays last in both directions: it is not a small number", () => {
    expect(sortRows(ds.rows, col("energy_per_output_token_j"), "desc").map((r) => r.key)).toEqual(["a/0000", "b/0000", "a/0001", "a/0002"]);
    expect(sortRows(ds.rows, col("gpu_name"), "desc").map((r) => r.key).at(-1)).toBe("b/0000");
    expect(sortRows(ds.rows, col("gpu_name"), "asc").map((r) => r.key).at(-1)).toBe("b/0000");
  });
  it("numbers sort as numbers, text naturally, ties by study then job", () => {
    expect(sortRows(ds.rows, col("batch"), "desc")[0].key).toBe("b/0000");
    expect(sortRows(ds.rows, col("model"), "asc").map((r) => r.key)).toEqual(["b/0000", "a/0000", "a/0001", "a/0002"]);
    expect(sortRows(ds.rows, col("study"), "asc").map((r) => r.key)).toEqual(["a/0000", "a/0001", "a/0002", "b/0000"]);
  });
});

describe("paging", () => {
  it("pages are clamped and numbered from 1", () => {
    expect(paginate(ds.rows, 1, 3)).toMatchObject({ page: 1, pages: 2, first: 1, last: 3 });
    expect(paginate(ds.rows, 9, 3)).toMatchObject({ page: 2, pages: 2, first: 4, last: 4 });
    expect(paginate([], 1, 3)).toMatchObject({ page: 1, pages: 1, first: 0, last: 0 });
  });
});
