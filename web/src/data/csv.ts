// Downloads of the current view: a CSV of the filtered, sorted rows (every page), and the same
// entries as JSON. Spreadsheets run a cell that begins with = + - @ tab or CR as a formula, so a
// text cell that begins so gets a leading ' (the rule llem's own CSV export follows,
// llem/results/export.py); numbers are written as they are.

import { metricOf, type TableColumn } from "./columns";
import type { Row } from "./types";

const FORMULA_START = ["=", "+", "-", "@", "\t", "\r"];
const PLAIN_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function defuseCell(text: string): string {
  const stripped = text.replace(/^'+/, "");
  if (!FORMULA_START.some((c) => stripped.startsWith(c))) return text;
  if (!text.startsWith("'") && PLAIN_NUMBER.test(text)) return text;
  return `'${text}`;
}

function quote(cell: string): string {
  return /[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "";
  if (typeof v === "boolean") return v ? "true" : "false";
  return quote(defuseCell(String(v)));
}

const ENTRY_FIELDS = ["energy_measured", "energy_not_measured_reason", "energy_estimated", "energy_meter",
  "energy_scope", "synthetic", "synthetic_reason"] as const;
const CONFIG_FIELDS = ["backend", "backend_version", "model", "precision", "batch", "device", "gpu_name",
  "output_len", "input_len", "num_prompts", "dataset"];

/** CSV text (RFC 4180, CRLF) of `rows` in order: identity, config, every metric of `columns` with
 * its interval where it has one, and the flags a reader must see (estimated, synthetic). */
export function toCsv(rows: Row[], columns: TableColumn[]): string {
  const metricCols = columns.filter((c) => c.kind === "metric");
  const header = ["study_id", "study_name", "job_id", "rank", "status", "label", ...CONFIG_FIELDS, ...ENTRY_FIELDS];
  for (const c of metricCols) {
    header.push(c.id);
    if (c.hasCi) header.push(`${c.id}_ci95_low`, `${c.id}_ci95_high`);
  }
  header.push("n_warnings", "warnings", "error_type", "error_message");
  const lines = [header.map(cell).join(",")];
  for (const r of rows) {
    const e = r.entry;
    const out: unknown[] = [r.study.id, r.study.name, e.job_id, e.rank, e.status, e.label,
      ...CONFIG_FIELDS.map((k) => e.config?.[k]), ...ENTRY_FIELDS.map((k) => e[k])];
    for (const c of metricCols) {
      const m = metricOf(r, c.id);
      out.push(m?.value);
      if (c.hasCi) out.push(m?.ci95_low, m?.ci95_high);
    }
    out.push(e.warnings?.length ?? 0, (e.warnings ?? []).join("; "), e.error?.type, e.error?.message);
    lines.push(out.map(cell).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

/** The entries of `rows` as one JSON document, each with its study (the view's raw data). */
export function toJson(rows: Row[], meta: Record<string, unknown>): string {
  return JSON.stringify({
    schema: "llem.leaderboard.view",
    ...meta,
    entries: rows.map((r) => ({ study: { id: r.study.id, name: r.study.name }, ...r.entry })),
  }, null, 1);
}
