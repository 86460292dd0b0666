import { describe, expect, it } from "vitest";
import { entry, index, study } from "./__fixtures__/docs";
import { buildDataset, checkSchema, dataUrlSetting, jobUrl, loadDataset, majorOf } from "./load";

describe("where the data is (a setting)", () => {
  it("defaults to data/index.json beside the page", () => {
    expect(dataUrlSetting("http://127.0.0.1:8000/site/index.html#/pareto", null).url).toBe("http://127.0.0.1:8000/site/data/index.json");
  });
  it("the page's meta tag can point elsewhere on the same host (e.g. an API)", () => {
    expect(dataUrlSetting("http://h/site/", "/api/leaderboard/index.json").url).toBe("http://h/api/leaderboard/index.json");
  });
  it("?data= overrides it, on the same origin only", () => {
    expect(dataUrlSetting("http://h/?data=other/study.json", null)).toEqual({ url: "http://h/other/study.json", note: null });
    const r = dataUrlSetting("http://h/?data=https://evil.example/x.json", null);
    expect(r.url).toBe("http://h/data/index.json");
    expect(r.note).toMatch(/ignored/);
  });
});

describe("schema checks", () => {
  it("reads any 1.x, refuses another major version or schema, naming the file", () => {
    expect(majorOf("1.2")).toBe(1);
    expect(() => checkSchema({ schema: "llem.leaderboard.study", schema_version: "1.9" }, ["llem.leaderboard.study"], "u")).not.toThrow();
    expect(() => checkSchema({ schema: "llem.leaderboard.study", schema_version: "2.0" }, ["llem.leaderboard.study"], "u"))
      .toThrow(/u: schema_version "2.0" is not 1.x/);
    expect(() => checkSchema({ schema: "llem.results.table", schema_version: "1.0" }, ["llem.leaderboard.study"], "u"))
      .toThrow(/schema "llem.results.table"/);
    expect(() => checkSchema([1, 2], ["x"], "u")).toThrow();
  });
});

describe("loading", () => {
  const a = study("a", "A", [entry("0000"), entry("0001", { detail: "a/0001.json" })]);
  const b = study("b", "B", [entry("0000")]);
  it("an index loads every study it lists, rows keyed study/job, in file order", async () => {
    const files: Record<string, unknown> = { "http://h/d/index.json": index([a, b]), "http://h/d/a.json": a, "http://h/d/b.json": b };
    const ds = await loadDataset("http://h/d/index.json", async (u) => files[u]);
    expect(ds.rows.map((r) => r.key)).toEqual(["a/0000", "a/0001", "b/0000"]);
    expect(ds.studyUrls).toEqual(["http://h/d/a.json", "http://h/d/b.json"]);
    expect(ds.errors).toEqual([]);
    expect(jobUrl(ds.rows[1])).toBe("http://h/d/a/0001.json");
    expect(jobUrl(ds.rows[0])).toBeNull();
  });
  it("a study that cannot be read is reported, the others still load", async () => {
    const files: Record<string, unknown> = { "http://h/d/index.json": index([a, b]), "http://h/d/a.json": a };
    const ds = await loadDataset("http://h/d/index.json", async (u) => {
      if (!(u in files)) throw new Error(`${u}: HTTP 404`);
      return files[u];
    });
    expect(ds.rows).toHaveLength(2);
    expect(ds.errors).toEqual(["study b: http://h/d/b.json: HTTP 404"]);
  });
  it("a single study file is a data source too", async () => {
    const ds = await loadDataset("http://h/a.json", async () => a);
    expect(ds.studies).toHaveLength(1);
    expect(ds.rows).toHaveLength(2);
  });
  it("columns are the union of the studies' columns", () => {
    const q = study("q", "Q", [entry("0000")], [...a.columns, { key: "quality_t_acc", task: "t", label: "t: acc", group: "quality", unit: null, higher_is_better: true, has_ci: true }]);
    const ds = buildDataset("x", [{ url: "http://h/a.json", doc: a }, { url: "http://h/q.json", doc: q }]);
    expect(ds.columns.map((c) => c.key)).toContain("quality_t_acc");
    expect(new Set(ds.columns.map((c) => c.key)).size).toBe(ds.columns.length);
  });
});
