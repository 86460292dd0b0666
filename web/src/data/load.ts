// Reading the leaderboard JSON: where it is (a setting), checking its schema, and turning the
// studies into one list of rows. Every URL is resolved against the page or the file that names
// it, and only URLs of the page's own origin are fetched: the site reads nothing from another host
// (the page's Content-Security-Policy says the same to the browser).

import {
  INDEX_SCHEMA, JOB_SCHEMA, STUDY_SCHEMA, SUPPORTED_MAJOR,
  type Column, type Dataset, type IndexDoc, type JobDoc, type Row, type StudyDoc,
} from "./types";

export const DEFAULT_DATA_URL = "data/index.json";
export const DATA_META = "llem-data-url";
export const DATA_PARAM = "data";

export type Fetcher = (url: string) => Promise<unknown>;

/** Where the leaderboard JSON is, as an absolute URL: `?data=URL` on the page's address (same
 * origin only), else the page's `<meta name="llem-data-url">`, else data/index.json beside it.
 * A `?data=` on another origin is refused with a note, never followed. */
export function dataUrlSetting(pageUrl: string, meta: string | null): { url: string; note: string | null } {
  const page = new URL(pageUrl);
  const fromQuery = page.searchParams.get(DATA_PARAM);
  const fallback = new URL(meta && meta.trim() ? meta.trim() : DEFAULT_DATA_URL, page).href;
  if (fromQuery) {
    let u: URL | null = null;
    try {
      u = new URL(fromQuery, page);
    } catch {
      u = null;
    }
    if (u && u.origin === page.origin) return { url: u.href, note: null };
    return { url: fallback, note: `?${DATA_PARAM}=${fromQuery} ignored: the leaderboard reads data from its own host only` };
  }
  return { url: fallback, note: null };
}

export function sameOrigin(url: string, base: string): boolean {
  return new URL(url, base).origin === new URL(base).origin;
}

/** The MAJOR part of a schema_version ("1.2" -> 1), or NaN. */
export function majorOf(version: unknown): number {
  if (typeof version !== "string") return NaN;
  return Number(version.split(".")[0]);
}

/** Throws an Error naming what is wrong unless `doc` is one of `schemas` at a supported version. */
export function checkSchema(doc: unknown, schemas: string[], url: string): void {
  if (!doc || typeof doc !== "object") throw new Error(`${url}: not a JSON object`);
  const d = doc as { schema?: unknown; schema_version?: unknown };
  if (typeof d.schema !== "string" || !schemas.includes(d.schema)) {
    throw new Error(`${url}: schema ${JSON.stringify(d.schema ?? null)} is not ${schemas.join(" or ")}`);
  }
  if (majorOf(d.schema_version) !== SUPPORTED_MAJOR) {
    throw new Error(`${url}: schema_version ${JSON.stringify(d.schema_version ?? null)} is not ${SUPPORTED_MAJOR}.x, ` +
      "which this page reads; rebuild the site with the llem that wrote the data");
  }
}

export async function fetchJson(url: string): Promise<unknown> {
  if (!sameOrigin(url, window.location.href)) throw new Error(`${url}: not on this site's host; not fetched`);
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

/** Lower-case text the search box matches: what a reader would type to find a row. */
export function searchText(study: { id: string; name: string }, e: StudyDoc["entries"][number]): string {
  const c = e.config || {};
  return [e.label, c.model, c.backend, c.precision, c.gpu_name, c.dataset, c.batch !== null && c.batch !== undefined
    ? `batch ${c.batch}` : null, study.name, study.id, e.job_id, e.status]
    .filter((v) => v !== null && v !== undefined && v !== "")
    .join(" \u0000 ")
    .toLowerCase();
}

/** One list of rows from the study documents (in the order given), and the union of their columns. */
export function buildDataset(source: string, docs: { url: string; doc: StudyDoc }[], errors: string[] = []): Dataset {
  const rows: Row[] = [];
  const columns: Column[] = [];
  const seen = new Set<string>();
  for (const { url, doc } of docs) {
    for (const c of doc.columns || []) {
      if (!seen.has(c.key)) {
        seen.add(c.key);
        columns.push(c);
      }
    }
    for (const e of doc.entries) {
      rows.push({ key: `${doc.study.id}/${e.job_id}`, study: doc.study, studyUrl: url, entry: e,
        search: searchText(doc.study, e) });
    }
  }
  return { source, studies: docs.map((d) => d.doc), studyUrls: docs.map((d) => d.url), rows, columns, errors };
}

/** Read the leaderboard at `url`: an index (then every study it lists) or one study file. A study
 * that cannot be read is named in `errors`; the others still load. */
export async function loadDataset(url: string, get: Fetcher = fetchJson): Promise<Dataset> {
  const top = await get(url);
  checkSchema(top, [INDEX_SCHEMA, STUDY_SCHEMA], url);
  if ((top as { schema: string }).schema === STUDY_SCHEMA) {
    return buildDataset(url, [{ url, doc: top as StudyDoc }]);
  }
  const index = top as IndexDoc;
  const errors: string[] = [];
  const results = await Promise.all(index.studies.map(async (s) => {
    const studyUrl = new URL(s.file, url).href;
    try {
      const doc = await get(studyUrl);
      checkSchema(doc, [STUDY_SCHEMA], studyUrl);
      return { url: studyUrl, doc: doc as StudyDoc };
    } catch (err) {
      errors.push(`study ${s.id}: ${(err as Error).message}`);
      return null;
    }
  }));
  return buildDataset(url, results.filter((r): r is { url: string; doc: StudyDoc } => r !== null), errors);
}

/** The job file of a row (its entry's `detail`, relative to the study file), or null without one. */
export function jobUrl(row: Row): string | null {
  const d = row.entry.detail;
  return d ? new URL(d, row.studyUrl).href : null;
}

export async function loadJob(row: Row, get: Fetcher = fetchJson): Promise<JobDoc | null> {
  const url = jobUrl(row);
  if (!url) return null;
  const doc = await get(url);
  checkSchema(doc, [JOB_SCHEMA], url);
  return doc as JobDoc;
}
