// How numbers and intervals read on the page: the same rules as llem's terminal tables
// (llem/results/fmt.py). An interval is always "[a, b]" (never "a-b", which reads as a negative
// number), its bounds with as many decimals as the point they belong to.

export function isMissing(v: unknown): v is null | undefined {
  return v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v));
}

/** Decimals that show `v` with `digits` significant digits, or null where fixed point would be
 * unreadable (below 1e-3, or 1e6 and above): exponent notation there. */
export function decimalsFor(v: number, digits = 4): number | null {
  const x = Math.abs(v);
  if (x === 0) return digits - 1;
  if (!(x >= 1e-3 && x < 1e6)) return null;
  return Math.max(0, digits - 1 - Math.floor(Math.log10(x)));
}

function stripZeros(s: string): string {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/** Python's "{:.<digits>g}": fixed point for exponents in [-4, digits), else "1.234e-05";
 * trailing zeros removed. */
export function fmtG(x: number, digits: number): string {
  const s = x.toExponential(digits - 1);
  const [mant, exp] = s.split("e");
  const e = Number(exp);
  if (e >= -4 && e < digits) return stripZeros(x.toFixed(Math.max(0, digits - 1 - e)));
  const sign = e < 0 ? "-" : "+";
  return `${stripZeros(mant)}e${sign}${String(Math.abs(e)).padStart(2, "0")}`;
}

/** `v` with `digits` significant digits (or exactly `decimals`); "n/a" when missing. */
export function fmtNum(v: number | null | undefined, digits = 4, decimals?: number | null): string {
  if (isMissing(v)) return "n/a";
  const d = decimals !== undefined && decimals !== null ? decimals : decimalsFor(v, digits);
  if (d === null) return fmtG(v, digits);
  return v.toFixed(d);
}

/** "[lo, hi]" with the point's decimals; "" when a bound is missing. */
export function fmtCi(lo: number | null | undefined, hi: number | null | undefined, point?: number | null,
  digits = 4): string {
  if (isMissing(lo) || isMissing(hi)) return "";
  const ref = !isMissing(point) ? point : (Math.abs(lo) + Math.abs(hi)) / 2;
  let d = decimalsFor(ref, digits);
  // a bound the point's decimals would round to zero keeps its own digits
  if (d !== null && ((lo !== 0 && Math.abs(lo) < 10 ** -d) || (hi !== 0 && Math.abs(hi) < 10 ** -d))) d = null;
  return `[${fmtNum(lo, digits, d)}, ${fmtNum(hi, digits, d)}]`;
}

/** "v [lo, hi]" (just "v" without an interval; "n/a" when `v` is missing). */
export function fmtWithCi(v: number | null | undefined, lo?: number | null, hi?: number | null, digits = 4): string {
  if (isMissing(v)) return "n/a";
  const ci = fmtCi(lo, hi, v, digits);
  return fmtNum(v, digits, decimalsFor(v, digits)) + (ci ? ` ${ci}` : "");
}

/** "v ± e" for a score and its standard error. */
export function fmtPlusMinus(v: number | null | undefined, e: number | null | undefined, digits = 4): string {
  if (isMissing(v)) return "n/a";
  if (isMissing(e)) return fmtNum(v, digits);
  const d = decimalsFor(v, digits);
  return `${fmtNum(v, digits, d)} ± ${fmtNum(e, digits, d !== null && e !== 0 && Math.abs(e) < 10 ** -d ? null : d)}`;
}
