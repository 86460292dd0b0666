// Filters (study, GPU, backend, precision, model), the text search, sorting and paging.

import { columnValue, RANK_METRIC, type TableColumn } from "./columns";
import type { Row } from "./types";
import { FILTER_KEYS, type FilterKey, type ViewState } from "./urlstate";

export const FILTER_LABELS: Record<FilterKey, string> = {
  study: "Study", gpu: "GPU", backend: "Backend", precision: "Precision", model: "Model",
};

/** The value a row has for a filter ("" when it has none, e.g. no GPU). */
export function filterValue(row: Row, key: FilterKey): string {
  if (key === "study") return row.study.id;
  const c = row.entry.config || {};
  const v = key === "gpu" ? c.gpu_name : c[key];
  return v === null || v === undefined ? "" : String(v);
}

export interface FilterOption {
  value: string;
  label: string;
  count: number; // rows with this value among all rows
}

/** Every value of `key` among `rows`, with how many rows have it, in a stable order. */
export function filterOptions(rows: Row[], key: FilterKey): FilterOption[] {
  const counts = new Map<string, { label: string; count: number }>();
  for (const r of rows) {
    const v = filterValue(r, key);
    const label = key === "study" ? r.study.name : v === "" ? (key === "gpu" ? "no GPU" : "(none)") : v;
    const c = counts.get(v);
    if (c) c.count += 1;
    else counts.set(v, { label, count: 1 });
  }
  return Array.from(counts, ([value, { label, count }]) => ({ value, label, count }))
    .sort((a, b) => collator.compare(a.label, b.label) || collator.compare(a.value, b.value));
}

/** Rows that pass every filter (values of one filter: any of them) and contain every search word. */
export function applyFilters(rows: Row[], s: Pick<ViewState, "filters" | "q">): Row[] {
  const active = FILTER_KEYS.filter((k) => s.filters[k].length > 0).map((k) => [k, new Set(s.filters[k])] as const);
  const words = s.q.toLowerCase().split(/\s+/).filter((w) => w !== "");
  if (active.length === 0 && words.length === 0) return rows;
  return rows.filter((r) => active.every(([k, set]) => set.has(filterValue(r, k)))
    && words.every((w) => r.search.includes(w)));
}

// natural order for text ("batch 2" before "batch 10"), case-insensitive; created once (costly)
const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

function compareValues(a: number | string, b: number | string): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return collator.compare(String(a), String(b));
}

function plain(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ids are ASCII slugs and zero-padded numbers: plain comparison orders them, at a fraction of the cost
function tieBreak(a: Row, b: Row): number {
  return plain(a.study.id, b.study.id) || plain(a.entry.job_id, b.entry.job_id);
}

/** Rows sorted by a column; a missing value always goes last, whichever the direction (it is not
 * a small number). Without a column: the ranking order, J/token lowest first. Stable. */
export function sortRows(rows: Row[], col: Pick<TableColumn, "id" | "kind"> | null, dir: "asc" | "desc"): Row[] {
  const by = col ?? { id: RANK_METRIC, kind: "metric" as const };
  const sign = col && dir === "desc" ? -1 : 1;
  const keyed = rows.map((r) => ({ r, v: columnValue(r, by) }));
  keyed.sort((a, b) => {
    if (a.v === null && b.v === null) return tieBreak(a.r, b.r);
    if (a.v === null) return 1;
    if (b.v === null) return -1;
    return sign * compareValues(a.v, b.v) || tieBreak(a.r, b.r);
  });
  return keyed.map((k) => k.r);
}

export interface Page {
  rows: Row[];
  page: number; // the page shown (clamped to the pages there are)
  pages: number;
  first: number; // 1-based index of the first row shown (0 when none)
  last: number;
}

export function paginate(rows: Row[], page: number, size: number): Page {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const p = Math.min(Math.max(1, page), pages);
  const start = (p - 1) * size;
  const shown = rows.slice(start, start + size);
  return { rows: shown, page: p, pages, first: shown.length ? start + 1 : 0, last: start + shown.length };
}
