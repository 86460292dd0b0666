import { describe, expect, it } from "vitest";
import { decimalsFor, fmtCi, fmtG, fmtNum, fmtPlusMinus, fmtWithCi } from "./format";

describe("numbers read as llem's terminal tables print them", () => {
  it("four significant digits in fixed point between 1e-3 and 1e6", () => {
    expect(fmtNum(0.2727272)).toBe("0.2727");
    expect(fmtNum(1941.7154)).toBe("1942");
    expect(fmtNum(13.4)).toBe("13.40");
    expect(fmtNum(0)).toBe("0.000");
    expect(decimalsFor(0.0005)).toBeNull();
  });
  it("Python's g format outside that range", () => {
    expect(fmtNum(0.00001234)).toBe("1.234e-05");
    expect(fmtNum(0.0001234)).toBe("0.0001234");
    expect(fmtNum(12345678)).toBe("1.235e+07");
    expect(fmtG(2.5e-7, 4)).toBe("2.5e-07");
  });
  it("a missing number is n/a, never 0", () => {
    expect(fmtNum(null)).toBe("n/a");
    expect(fmtNum(undefined)).toBe("n/a");
    expect(fmtNum(Number.NaN)).toBe("n/a");
    expect(fmtWithCi(null, 1, 2)).toBe("n/a");
  });
  it("an interval takes the point's decimals, and keeps digits a bound would lose", () => {
    expect(fmtWithCi(0.07465, 0.030764, 0.18115)).toBe("0.07465 [0.03076, 0.18115]");
    expect(fmtCi(0.00001, 0.3, 0.2)).toBe("[1e-05, 0.3000]");
    expect(fmtWithCi(5, null, 6)).toBe("5.000");
  });
  it("score ± stderr", () => {
    expect(fmtPlusMinus(0.73, 0.035)).toBe("0.7300 ± 0.0350");
    expect(fmtPlusMinus(0.5, null)).toBe("0.5000");
  });
});
