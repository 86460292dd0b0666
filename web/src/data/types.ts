// The leaderboard JSON export, as llem writes it (docs/leaderboard-schema.md). Readers ignore keys
// they do not know (a MINOR version only adds keys) and refuse another MAJOR version.

export const SUPPORTED_MAJOR = 1;
export const INDEX_SCHEMA = "llem.leaderboard.index";
export const STUDY_SCHEMA = "llem.leaderboard.study";
export const JOB_SCHEMA = "llem.leaderboard.job";

export interface Metric {
  value: number | null;
  ci95_low?: number | null;
  ci95_high?: number | null;
  n?: number | null;
  stderr?: number | null;
  se?: number | null;
  not_measured_reason?: string | null;
}

export interface Column {
  key: string;
  label: string;
  group: "config" | "energy" | "throughput" | "latency" | "carbon" | "quality" | string;
  unit: string | null;
  higher_is_better: boolean | null;
  has_ci: boolean;
  description?: string;
  task?: string;
}

export interface QualityBlock {
  status: string;
  meaningless: boolean;
  task: string | null;
  reason: string | null;
}

export interface Entry {
  rank: number | null;
  job_id: string;
  config_hash: string | null;
  status: string | null;
  label: string;
  config: Record<string, string | number | boolean | null>;
  energy_measured: boolean | null;
  energy_not_measured_reason: string | null;
  energy_estimated: boolean | null;
  energy_meter: string | null;
  energy_source?: string | null;
  energy_scope?: string | null;
  energy_adjusted_reason?: string | null;
  metrics: Record<string, Metric>;
  warnings: string[];
  error: { type: string | null; message: string | null } | null;
  synthetic: boolean | null;
  synthetic_reason?: string | null;
  detail?: string | null;
  quality?: QualityBlock | null;
  carbon?: Record<string, number | string | null>;
}

export interface StudyInfo {
  id: string;
  name: string;
  study_design_hash: string | null;
  n_jobs: number;
  n_ranked: number;
  status_counts?: Record<string, number>;
  synthetic?: boolean;
  created_at?: string | null;
  finished_at?: string | null;
  llem_version?: string | null;
}

export interface StudyDoc {
  schema: string;
  schema_version: string;
  generated_at: string;
  generator?: { name: string; version: string };
  study: StudyInfo;
  ranking: { metric: string; order: string; rule: string };
  columns: Column[];
  carbon: Record<string, unknown> | null;
  entries: Entry[];
}

export interface IndexStudy {
  id: string;
  name: string;
  file: string;
  n_jobs: number;
  n_ranked: number;
  synthetic?: boolean;
}

export interface IndexDoc {
  schema: string;
  schema_version: string;
  generated_at: string;
  studies: IndexStudy[];
}

export interface TimeseriesGpu {
  gpu_index: number | null;
  uuid: string | null;
  samples: number;
  points: number;
  t_s: (number | null)[];
  power_w?: (number | null)[];
  power_w_min?: (number | null)[];
  power_w_max?: (number | null)[];
  temperature_c?: (number | null)[];
  sm_clock_mhz?: (number | null)[];
  utilization_gpu_pct?: (number | null)[];
  cycle?: (number | null)[];
}

export interface Timeseries {
  gpus: TimeseriesGpu[];
  downsampled?: boolean;
  method?: string;
  not_available_reason: string | null;
  measured_windows_s?: [number, number][];
}

// A job file: the job page's data beyond the study table. `result` is llem's result.json, less the
// fields that identify the host, as published; null for a job that wrote no result.
export interface JobDoc {
  schema: string;
  schema_version: string;
  generated_at: string;
  study: { id: string; name: string };
  job_id: string;
  entry: Entry;
  result: Record<string, any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  result_problem: string | null;
  timeseries: Timeseries;
}

// One table row: an entry and the study it came from.
export interface Row {
  key: string; // "<study id>/<job id>": unique across the site, and what selections and links name
  study: StudyInfo;
  studyUrl: string; // the study file's URL (raw JSON download; job files resolve against it)
  entry: Entry;
  search: string; // lower-case text the search box matches
}

export interface Dataset {
  source: string; // the URL the data was read from
  studies: StudyDoc[];
  studyUrls: string[];
  rows: Row[];
  columns: Column[]; // union of the studies' columns, first occurrence wins
  errors: string[]; // studies that could not be read: shown, never hidden
}
