// The whole view lives in the URL's fragment, so a link reproduces it exactly:
//   #/<view>[/<study id>/<job id>]?q=..&study=..&gpu=..&backend=..&precision=..&model=..
//                                  &sort=<column>&dir=asc|desc&page=N&size=N&sel=<study>/<job>&y=<metric>
// Filters and selections are repeated parameters (a value may hold any character). Defaults are
// left out and filter values sorted, so one view has one URL. The fragment never reaches a
// server, so the site needs no server-side routing.

export const FILTER_KEYS = ["study", "gpu", "backend", "precision", "model"] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];
export type View = "table" | "pareto" | "compare" | "job";

export const PAGE_SIZES = [25, 50, 100, 250];
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_COMPARE = 4;
export const DEFAULT_Y = "output_tokens_per_s";

export interface ViewState {
  view: View;
  job: string | null; // "<study id>/<job id>" on the job page
  q: string;
  filters: Record<FilterKey, string[]>; // "" stands for "no value" (e.g. a job without a GPU)
  sort: string | null; // a column id; null: the ranking order (J/token, lowest first)
  dir: "asc" | "desc";
  page: number; // 1-based
  size: number;
  sel: string[]; // row keys, in the order they were picked (the compare view's column order)
  y: string; // the Pareto chart's y metric
}

export function emptyFilters(): Record<FilterKey, string[]> {
  return { study: [], gpu: [], backend: [], precision: [], model: [] };
}

export function defaultState(): ViewState {
  return { view: "table", job: null, q: "", filters: emptyFilters(), sort: null, dir: "asc", page: 1,
    size: DEFAULT_PAGE_SIZE, sel: [], y: DEFAULT_Y };
}

function positiveInt(v: string | null, fallback: number): number {
  if (v === null || !/^\d+$/.test(v)) return fallback;
  const n = Number(v);
  return n >= 1 ? n : fallback;
}

/** The view a fragment ("#/pareto?gpu=H100") describes; anything unknown falls back to defaults. */
export function parseHash(hash: string): ViewState {
  const s = defaultState();
  const raw = hash.startsWith("#") ? hash.slice(1) : hash;
  const qi = raw.indexOf("?");
  const path = qi >= 0 ? raw.slice(0, qi) : raw;
  const params = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : "");
  const parts = path.split("/").filter((p) => p !== "").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const view = parts[0] ?? "";
  if (view === "pareto" || view === "compare") s.view = view;
  if (view === "job" && parts.length >= 3) {
    s.view = "job";
    s.job = `${parts[1]}/${parts.slice(2).join("/")}`;
  }
  s.q = params.get("q") ?? "";
  for (const k of FILTER_KEYS) s.filters[k] = uniqueSorted(params.getAll(k));
  s.sort = params.get("sort") || null;
  s.dir = params.get("dir") === "desc" ? "desc" : "asc";
  s.page = positiveInt(params.get("page"), 1);
  const size = positiveInt(params.get("size"), DEFAULT_PAGE_SIZE);
  s.size = PAGE_SIZES.includes(size) ? size : DEFAULT_PAGE_SIZE;
  s.sel = Array.from(new Set(params.getAll("sel").filter((v) => v.includes("/")))).slice(0, MAX_COMPARE);
  s.y = params.get("y") || DEFAULT_Y;
  return s;
}

function uniqueSorted(values: string[]): string[] {
  return Array.from(new Set(values)).sort();
}

/** The fragment for a view (with "#"): the inverse of parseHash, defaults left out. */
export function formatHash(s: ViewState): string {
  let path = "/";
  if (s.view === "pareto" || s.view === "compare") path = `/${s.view}`;
  if (s.view === "job" && s.job) {
    const i = s.job.indexOf("/");
    path = `/job/${encodeURIComponent(s.job.slice(0, i))}/${encodeURIComponent(s.job.slice(i + 1))}`;
  }
  const p = new URLSearchParams();
  if (s.q) p.set("q", s.q);
  for (const k of FILTER_KEYS) for (const v of uniqueSorted(s.filters[k])) p.append(k, v);
  if (s.sort) {
    p.set("sort", s.sort);
    if (s.dir === "desc") p.set("dir", "desc");
  }
  if (s.page > 1) p.set("page", String(s.page));
  if (s.size !== DEFAULT_PAGE_SIZE) p.set("size", String(s.size));
  for (const k of s.sel) p.append("sel", k);
  if (s.y !== DEFAULT_Y) p.set("y", s.y);
  const qs = p.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

/** `s` with `patch` applied; a change to what is shown (filters, search, sort, page size) goes
 * back to page 1, as a reader expects. */
export function update(s: ViewState, patch: Partial<ViewState>): ViewState {
  const next = { ...s, ...patch, filters: { ...s.filters, ...(patch.filters ?? {}) } };
  const resets = ["q", "filters", "sort", "dir", "size"] as const;
  if (patch.page === undefined && resets.some((k) => k in patch)) next.page = 1;
  return next;
}

/** Select or unselect a row for comparison (at most MAX_COMPARE; picking a fifth is refused). */
export function toggleSelection(sel: string[], key: string): string[] {
  if (sel.includes(key)) return sel.filter((k) => k !== key);
  if (sel.length >= MAX_COMPARE) return sel;
  return [...sel, key];
}
