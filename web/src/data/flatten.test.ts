import { describe, expect, it } from "vitest";
import { flatten, plainValue } from "./flatten";

describe("nested objects as rows", () => {
  it("dotted keys, arrays as one value, empty objects kept", () => {
    expect(flatten({ a: 1, b: { c: true, d: { e: "x" } }, f: [1, 2], g: {}, h: null })).toEqual([
      ["a", 1], ["b.c", true], ["b.d.e", "x"], ["f", [1, 2]], ["g", null], ["h", null]]);
  });
  it("values as text", () => {
    expect(plainValue(null)).toBe("—");
    expect(plainValue(false)).toBe("no");
    expect(plainValue(8)).toBe("8");
    expect(plainValue(0.123456)).toBe("0.1235");
    expect(plainValue([1, "a"])).toBe("1, a");
    expect(plainValue({ k: 1 })).toBe('{"k":1}');
  });
});
