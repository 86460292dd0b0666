// Leaderboard documents for the data layer's unit tests: SYNTHETIC TEST DATA in the shape
// llem's export writes (docs/leaderboard-schema.md), small enough to reason about by hand.

import type { Column, Entry, IndexDoc, StudyDoc } from "../types";

export const COLUMNS: Column[] = [
  { key: "model", label: "model", group: "config", unit: null, higher_is_better: null, has_ci: false },
  { key: "energy_per_output_token_j", label: "Energy per output token", group: "energy", unit: "J", higher_is_better: false, has_ci: true },
  { key: "energy_adjusted_per_output_token_j", label: "Energy per output token (baseline-adjusted)", group: "energy", unit: "J", higher_is_better: false, has_ci: true },
  { key: "tokens_per_joule", label: "Tokens per joule", group: "energy", unit: "tokens/J", higher_is_better: true, has_ci: true },
  { key: "output_tokens_per_s", label: "Throughput", group: "throughput", unit: "tokens/s", higher_is_better: true, has_ci: true },
  { key: "ttft_ms_p50", label: "TTFT p50", group: "latency", unit: "ms", higher_is_better: false, has_ci: false },
];

export const QUALITY_COLUMNS: Column[] = [
  { key: "quality_easy_mc_acc", task: "easy_mc", label: "easy_mc: acc", group: "quality", unit: null, higher_is_better: true, has_ci: true },
  { key: "quality_easy_mc_per_joule", task: "easy_mc", label: "easy_mc: correct answers per joule", group: "quality", unit: "1/J", higher_is_better: true, has_ci: true },
];

export function entry(job: string, over: Partial<Entry> & { j?: number | null; tps?: number | null; gpu?: string | null } = {}): Entry {
  const { j = 0.5, tps = 100, gpu = "GPU A", ...rest } = over;
  const e: Entry = {
    rank: j === null ? null : 1, job_id: job, config_hash: `hash-${job}`, status: "completed",
    label: `pytorch · tiny · bf16 · batch 1`,
    config: { backend: "pytorch", model: "tiny", precision: "bf16", batch: 1, gpu_name: gpu },
    energy_measured: j !== null, energy_not_measured_reason: j === null ? "energy=none was requested" : null,
    energy_estimated: false, energy_meter: j === null ? "none" : "nvml",
    metrics: {
      energy_per_output_token_j: j === null ? { value: null, ci95_low: null, ci95_high: null, n: null, not_measured_reason: "energy=none was requested" }
        : { value: j, ci95_low: j * 0.9, ci95_high: j * 1.1, n: 3 },
      output_tokens_per_s: tps === null ? { value: null, not_measured_reason: "not recorded" } : { value: tps, ci95_low: tps * 0.95, ci95_high: tps * 1.05, n: 3 },
      ttft_ms_p50: { value: 12.5 },
    },
    warnings: [], error: null, synthetic: true, synthetic_reason: "SYNTHETIC TEST DATA", detail: null,
    ...rest,
  };
  const c = e.config;
  return { ...e, label: rest.label ?? `${c.backend} · ${c.model} · ${c.precision} · batch ${c.batch}` };
}

export function study(id: string, name: string, entries: Entry[], columns: Column[] = COLUMNS): StudyDoc {
  return {
    schema: "llem.leaderboard.study", schema_version: "1.2", generated_at: "2026-12-07T00:00:00+00:00",
    generator: { name: "llem", version: "0.1.0" },
    study: { id, name, study_design_hash: null, n_jobs: entries.length, n_ranked: entries.filter((e) => e.rank !== null).length },
    ranking: { metric: "energy_per_output_token_j", order: "ascending", rule: "" }, columns, carbon: null, entries,
  };
}

export function index(studies: StudyDoc[]): IndexDoc {
  return {
    schema: "llem.leaderboard.index", schema_version: "1.2", generated_at: "2026-12-07T00:00:00+00:00",
    studies: studies.map((s) => ({ id: s.study.id, name: s.study.name, file: `${s.study.id}.json`, n_jobs: s.entries.length, n_ranked: 0 })),
  };
}
