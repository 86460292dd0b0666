import { describe, expect, it } from "vitest";
import { entry, study } from "./__fixtures__/docs";
import { tableColumns } from "./columns";
import { defuseCell, toCsv, toJson } from "./csv";
import { buildDataset } from "./load";

describe("CSV of the current view", () => {
  it("text a spreadsheet would run as a formula gets a leading quote; numbers stay numbers", () => {
    expect(defuseCell("=HYPERLINK(\"x\")")).toBe("'=HYPERLINK(\"x\")");
    expect(defuseCell("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(defuseCell("-5")).toBe("-5");
    expect(defuseCell("'=x")).toBe("''=x");
    expect(defuseCell("tiny-llama")).toBe("tiny-llama");
  });
  it("one line per row in the given order, intervals beside values, missing as empty", () => {
    const ds = buildDataset("x", [{ url: "http://h/a.json", doc: study("a", "A", [
      entry("0001", { j: 0.25, config: { backend: "vllm", model: "=cmd|' /C calc'!A0", precision: "fp16", batch: 8, gpu_name: "G, \"quoted\"" } }),
      entry("0002", { j: null }),
    ]) }]);
    const text = toCsv(ds.rows, tableColumns(ds));
    const lines = text.split("\r\n");
    expect(lines).toHaveLength(4); // header, 2 rows, trailing empty
    expect(lines[3]).toBe("");
    const header = lines[0].split(",");
    expect(header.slice(0, 6)).toEqual(["study_id", "study_name", "job_id", "rank", "status", "label"]);
    const j = header.indexOf("energy_per_output_token_j");
    expect(header.slice(j, j + 3)).toEqual(["energy_per_output_token_j", "energy_per_output_token_j_ci95_low", "energy_per_output_token_j_ci95_high"]);
    expect(lines[1]).toContain(`"'=cmd|' /C calc'!A0"`.replace(/^"|"$/g, ""));
    expect(lines[1]).toContain(`"G, ""quoted"""`);
    expect(lines[2]).toContain("energy=none was requested");
  });
  it("the JSON download carries each entry with its study", () => {
    const ds = buildDataset("x", [{ url: "http://h/a.json", doc: study("a", "A", [entry("0001")]) }]);
    const doc = JSON.parse(toJson(ds.rows, { source: "x" }));
    expect(doc.schema).toBe("llem.leaderboard.view");
    expect(doc.entries[0]).toMatchObject({ study: { id: "a", name: "A" }, job_id: "0001" });
  });
});
