import { describe, expect, it } from "vitest";
import { defaultState, formatHash, MAX_COMPARE, parseHash, toggleSelection, update } from "./urlstate";

describe("the view in the URL", () => {
  it("round-trips every part of the state", () => {
    const s = { ...defaultState(), view: "pareto" as const, q: "llama 8b", sort: "output_tokens_per_s", dir: "desc" as const,
      page: 3, size: 100, sel: ["s-1/0002", "s-2/0001"], y: "quality_easy_mc_acc",
      filters: { study: ["s-1"], gpu: ["NVIDIA H100 80GB HBM3", ""], backend: ["vllm"], precision: [], model: ["a,b&c=d"] } };
    const back = parseHash(formatHash(s));
    expect(back).toEqual({ ...s, filters: { ...s.filters, gpu: ["", "NVIDIA H100 80GB HBM3"] } });
  });
  it("defaults are left out, so one view has one URL", () => {
    expect(formatHash(defaultState())).toBe("#/");
    expect(formatHash({ ...defaultState(), sort: "batch" })).toBe("#/?sort=batch");
    const a = formatHash({ ...defaultState(), filters: { ...defaultState().filters, backend: ["vllm", "pytorch"] } });
    const b = formatHash({ ...defaultState(), filters: { ...defaultState().filters, backend: ["pytorch", "vllm"] } });
    expect(a).toBe(b);
  });
  it("a job page names its study and job; ids with odd characters survive", () => {
    const s = { ...defaultState(), view: "job" as const, job: "my-study-1234abcd/0003_c1" };
    expect(formatHash(s)).toBe("#/job/my-study-1234abcd/0003_c1");
    expect(parseHash(formatHash(s)).job).toBe("my-study-1234abcd/0003_c1");
    const odd = { ...s, job: "study/<img src=x>/x" };
    expect(parseHash(formatHash(odd)).job).toBe("study/<img src=x>/x");
  });
  it("garbage falls back to defaults instead of failing", () => {
    const s = parseHash("#/nowhere?page=-3&size=7&dir=sideways&sel=noslash");
    expect(s.view).toBe("table");
    expect(s.page).toBe(1);
    expect(s.size).toBe(defaultState().size);
    expect(s.dir).toBe("asc");
    expect(s.sel).toEqual([]);
  });
  it("changing what is shown goes back to page 1; paging keeps the rest", () => {
    const s = { ...defaultState(), page: 4 };
    expect(update(s, { q: "x" }).page).toBe(1);
    expect(update(s, { filters: { ...s.filters, gpu: ["A"] } }).page).toBe(1);
    expect(update(s, { page: 2 }).page).toBe(2);
    expect(update(s, { y: "z" }).page).toBe(4);
  });
  it("at most four entries can be selected for comparison", () => {
    let sel: string[] = [];
    for (const k of ["a/1", "a/2", "a/3", "a/4", "a/5"]) sel = toggleSelection(sel, k);
    expect(sel).toEqual(["a/1", "a/2", "a/3", "a/4"]);
    expect(sel.length).toBe(MAX_COMPARE);
    expect(toggleSelection(sel, "a/2")).toEqual(["a/1", "a/3", "a/4"]);
  });
});
