// Nested config, environment and methodology objects as "a.b.c" rows of text.

import { fmtNum } from "./format";

/** A value as the text a table cell shows ("—" for nothing, "yes"/"no", numbers to 4 digits). */
export function plainValue(v: unknown): string {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : fmtNum(v);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) return v.length ? v.map(plainValue).join(", ") : "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** `obj` as [dotted key, value] pairs, depth first in key order; arrays stay one value. */
export function flatten(obj: unknown, prefix = ""): [string, unknown][] {
  if (obj !== null && typeof obj === "object" && !Array.isArray(obj)) {
    const entries = Object.entries(obj as Record<string, unknown>);
    if (entries.length === 0) return prefix ? [[prefix, null]] : [];
    return entries.flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
  }
  return prefix ? [[prefix, obj]] : [];
}
