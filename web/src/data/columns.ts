// The leaderboard table's columns: what each shows, and the value it sorts and exports by.

import type { Column, Dataset, Metric, Row } from "./types";

export type ColumnKind = "rank" | "config" | "study" | "metric";

export interface TableColumn {
  id: string; // the export's key (config key or metric key), "rank" or "study"
  label: string; // short header
  title: string; // what the column is, in words (header tooltip, CSV header)
  unit: string | null;
  kind: ColumnKind;
  hasCi: boolean;
  higherIsBetter: boolean | null;
  quality?: boolean;
}

export const RANK_METRIC = "energy_per_output_token_j";

// the headline metrics, in the order the table shows them, with short headers
const METRIC_COLUMNS: [string, string][] = [
  ["energy_per_output_token_j", "J/token [95% CI]"],
  ["energy_adjusted_per_output_token_j", "adj. J/token [95% CI]"],
  ["tokens_per_joule", "tokens/J"],
  ["output_tokens_per_s", "tok/s [95% CI]"],
  ["ttft_ms_p50", "TTFT p50 (ms)"],
  ["ttft_ms_p99", "TTFT p99 (ms)"],
  ["itl_ms_p50", "ITL p50 (ms)"],
  ["itl_ms_p99", "ITL p99 (ms)"],
];

const CONFIG_COLUMNS: [string, string, string][] = [
  ["model", "model", "the model"],
  ["backend", "backend", "inference backend"],
  ["precision", "precision", "weights' precision"],
  ["batch", "batch", "batch size"],
  ["gpu_name", "GPU", "GPU(s) the job ran on"],
];

function metricColumn(id: string, label: string, byKey: Map<string, Column>): TableColumn {
  const c = byKey.get(id);
  return {
    id, label, kind: "metric",
    title: c ? `${c.label}${c.unit ? ` (${c.unit})` : ""}${c.description ? `: ${c.description}` : ""}` : id,
    unit: c?.unit ?? null, hasCi: c?.has_ci ?? false, higherIsBetter: c?.higher_is_better ?? null,
  };
}

/** The quality score and quality-per-joule columns the studies carry (group "quality"). */
export function qualityColumns(ds: Pick<Dataset, "columns">): TableColumn[] {
  return ds.columns.filter((c) => c.group === "quality").map((c) => ({
    id: c.key,
    label: c.key.endsWith("_per_joule") ? `${c.task ?? ""} correct/J` : `${c.task ?? ""} ${c.key.slice(`quality_${c.task}_`.length)}`,
    title: `${c.label}${c.unit ? ` (${c.unit})` : ""}${c.description ? `: ${c.description}` : ""}`,
    unit: c.unit, kind: "metric" as const, hasCi: c.has_ci, higherIsBetter: c.higher_is_better, quality: true,
  }));
}

/** Every column of the table for this dataset (the study column only when there are several). */
export function tableColumns(ds: Pick<Dataset, "columns" | "studies">): TableColumn[] {
  const byKey = new Map(ds.columns.map((c) => [c.key, c]));
  const cols: TableColumn[] = [
    { id: "rank", label: "rank", title: "rank within its study, by J/token (lowest first); unranked: energy not measured or job not completed",
      unit: null, kind: "rank", hasCi: false, higherIsBetter: null },
  ];
  for (const [id, label, title] of CONFIG_COLUMNS) {
    cols.push({ id, label, title, unit: null, kind: "config", hasCi: false, higherIsBetter: null });
  }
  if (ds.studies.length > 1) {
    cols.push({ id: "study", label: "study", title: "the study the job belongs to", unit: null, kind: "study",
      hasCi: false, higherIsBetter: null });
  }
  for (const [id, label] of METRIC_COLUMNS) cols.push(metricColumn(id, label, byKey));
  return cols.concat(qualityColumns(ds));
}

export function metricOf(row: Row, id: string): Metric | undefined {
  return row.entry.metrics?.[id];
}

/** The value a column sorts by (and the CSV holds): a number, a string, or null when missing. */
export function columnValue(row: Row, col: Pick<TableColumn, "id" | "kind">): number | string | null {
  switch (col.kind) {
    case "rank":
      return row.entry.rank;
    case "study":
      return row.study.name;
    case "config": {
      const v = row.entry.config?.[col.id];
      return v === undefined || v === null ? null : typeof v === "boolean" ? String(v) : v;
    }
    case "metric": {
      const v = metricOf(row, col.id)?.value;
      return typeof v === "number" && Number.isFinite(v) ? v : null;
    }
  }
}

/** Why an entry's energy is missing, in words, or null when it was measured. */
export function energyMissingReason(row: Row): string | null {
  const e = row.entry;
  const m = e.metrics?.[RANK_METRIC];
  if (m && typeof m.value === "number") return null;
  if (e.status && e.status !== "completed") {
    const err = e.error ? [e.error.type, e.error.message].filter(Boolean).join(": ") : "";
    return `job ${e.status}${err ? ` (${err})` : ""}`;
  }
  return e.energy_not_measured_reason || m?.not_measured_reason || "not recorded";
}
