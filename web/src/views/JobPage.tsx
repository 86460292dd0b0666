import { useEffect, useState } from "react";
import { RANK_METRIC } from "../data/columns";
import { flatten, plainValue } from "../data/flatten";
import { fmtNum, fmtPlusMinus } from "../data/format";
import { jobUrl, loadJob } from "../data/load";
import type { Column, Dataset, JobDoc, Row } from "../data/types";
import { formatHash, type ViewState } from "../data/urlstate";
import { EnergyCell, EntryBadges, KeyValues, MetricValue } from "./common";
import { TimeSeries } from "./TimeSeries";

type Load = { state: "loading" } | { state: "none" } | { state: "error"; message: string } | { state: "ready"; doc: JobDoc };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

function Metrics({ row, columns }: { row: Row; columns: Column[] }) {
  const metricCols = columns.filter((c) => c.group !== "config" && row.entry.metrics?.[c.key] !== undefined);
  return (
    <table className="kv metrics" aria-label="Metrics">
      <tbody>
        {metricCols.map((c) => (
          <tr key={c.key}>
            <th scope="row" title={c.description}>{c.label}{c.unit ? ` (${c.unit})` : ""}</th>
            <td>
              {c.key === RANK_METRIC ? <EnergyCell row={row} metric={c.key} /> : <MetricValue m={row.entry.metrics[c.key]} />}
              {row.entry.metrics[c.key]?.se !== undefined && row.entry.metrics[c.key]?.se !== null
                ? <span className="muted"> (± {fmtNum(row.entry.metrics[c.key].se)} one standard error)</span> : null}
              {row.entry.metrics[c.key]?.value === null && row.entry.metrics[c.key]?.not_measured_reason
                ? <span className="muted"> {row.entry.metrics[c.key].not_measured_reason}</span> : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const CARDS: [string, string][] = [
  ["energy_per_output_token_j", "Energy per output token (J)"],
  ["energy_adjusted_per_output_token_j", "Baseline-adjusted (J/token)"],
  ["output_tokens_per_s", "Throughput (tokens/s)"],
  ["tokens_per_joule", "Tokens per joule"],
];

/** The headline numbers first, each with its 95% interval (or why it is missing). */
function Cards({ row }: { row: Row }) {
  return (
    <dl className="cards" data-testid="headline">
      {CARDS.map(([k, label]) => (
        <div key={k} className="card">
          <dt>{label}</dt>
          <dd>{k === RANK_METRIC ? <EnergyCell row={row} metric={k} /> : <MetricValue m={row.entry.metrics?.[k]} />}</dd>
        </div>
      ))}
    </dl>
  );
}

function Phases({ phases }: { phases: Obj | null | undefined }) {
  if (!phases) return <p className="muted">No prefill/decode split recorded (measurement.phase_split was off, or the job did not finish).</p>;
  const pre = phases.prefill ?? {};
  const dec = phases.decode ?? {};
  const total = (pre.energy_j ?? 0) + (dec.energy_j ?? 0);
  const share = total > 0 && pre.energy_j !== null && dec.energy_j !== null ? pre.energy_j / total : null;
  return (
    <div data-testid="phases">
      {phases.energy_not_measured_reason ? <p className="missing">Phase energy not measured: {phases.energy_not_measured_reason}</p> : null}
      <table className="grid-table" aria-label="Prefill and decode">
        <thead>
          <tr><th scope="col">phase</th><th scope="col">energy (J)</th><th scope="col">adjusted energy (J)</th><th scope="col">duration (s)</th><th scope="col">tokens</th><th scope="col">per unit</th></tr>
        </thead>
        <tbody>
          <tr>
            <th scope="row">prefill</th><td>{fmtNum(pre.energy_j)}</td><td>{fmtNum(pre.energy_adjusted_j)}</td>
            <td>{fmtNum(pre.duration_s)}</td><td>{plainValue(pre.tokens)}</td>
            <td>{fmtPlusMinus(phases.prefill_energy_per_prompt_j, phases.prefill_energy_per_prompt_se_j)} J per prompt</td>
          </tr>
          <tr>
            <th scope="row">decode</th><td>{fmtNum(dec.energy_j)}</td><td>{fmtNum(dec.energy_adjusted_j)}</td>
            <td>{fmtNum(dec.duration_s)}</td><td>{plainValue(dec.tokens)}</td>
            <td>{fmtPlusMinus(phases.decode_energy_per_output_token_j, phases.decode_energy_per_output_token_se_j)} J per output token</td>
          </tr>
        </tbody>
      </table>
      {share !== null && share >= 0 && share <= 1 ? (
        <div className="split-bar" role="img" aria-label={`prefill ${Math.round(share * 100)}% and decode ${Math.round((1 - share) * 100)}% of the energy per workload pass`}>
          <span className="prefill" style={{ width: `${share * 100}%` }}>prefill {Math.round(share * 100)}%</span>
          <span className="decode" style={{ width: `${(1 - share) * 100}%` }}>decode {Math.round((1 - share) * 100)}%</span>
        </div>
      ) : null}
      <p className="muted">± is one standard error. Energies are per {phases.windows?.per ?? "workload pass"}.</p>
      <p><b>Method:</b> {phases.method}</p>
      <p><b>Error:</b> {phases.error}</p>
    </div>
  );
}

function Environment({ env }: { env: Obj | null | undefined }) {
  if (!env) return <p className="muted">No environment recorded.</p>;
  const gpus: Obj[] = env.gpus ?? [];
  return (
    <div>
      {gpus.length ? (
        <div className="table-wrap" role="region" aria-label="GPUs" tabIndex={0}>
          <table className="grid-table" aria-label="GPUs">
            <thead>
              <tr>
                {["GPU", "name", "driver", "power limit (W)", "default limit (W)", "persistence", "MIG", "ECC", "SM clock (MHz)", "max SM clock (MHz)", "temperature (°C)", "memory (MiB)"].map((h) => <th key={h} scope="col">{h}</th>)}
              </tr>
            </thead>
            <tbody>
              {gpus.map((g, i) => (
                <tr key={i}>
                  <td>{plainValue(g.index)}</td><td>{plainValue(g.name)}</td><td>{plainValue(env.driver_version)}</td>
                  <td className={g.power_limit_w !== g.default_power_limit_w ? "differs" : undefined}>{plainValue(g.power_limit_w)}</td>
                  <td>{plainValue(g.default_power_limit_w)}</td><td>{plainValue(g.persistence_mode)}</td><td>{plainValue(g.mig_mode)}</td>
                  <td>{plainValue(g.ecc_mode)}</td><td>{plainValue(g.sm_clock_mhz)}</td><td>{plainValue(g.max_sm_clock_mhz)}</td>
                  <td>{plainValue(g.temperature_c)}</td><td>{plainValue(g.memory_total_mib)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : <p className="muted">No GPU: {plainValue(env.gpu_unavailable_reason)}</p>}
      <KeyValues label="Host" items={[
        ["driver", env.driver_version], ["CUDA (driver)", env.cuda_driver_version], ["CUDA (torch)", env.torch_cuda_version],
        ["CPU", env.cpu], ["CPU cores", env.cpu_count], ["RAM (GiB)", env.ram_gib], ["OS", env.os], ["Python", env.python],
        ["CUDA_VISIBLE_DEVICES", env.cuda_visible_devices], ["in a container", env.container?.in_container],
        ...flatten(env.slurm ?? {}, "slurm"),
      ]} />
      <details>
        <summary>Package versions</summary>
        <KeyValues label="Package versions" items={flatten(env.packages ?? {})} />
      </details>
      {(env.errors ?? []).length ? (
        <>
          <h4>Notes from the snapshot</h4>
          <ul>{(env.errors as string[]).map((e, i) => <li key={i}>{e}</li>)}</ul>
        </>
      ) : null}
    </div>
  );
}

function Methodology({ result }: { result: Obj }) {
  const m: Obj = result.measurement_methodology ?? {};
  const md = m.meter_details ?? {};
  const w = m.window ?? {};
  const b = m.baseline ?? {};
  const statMethod = Object.values(result.stats ?? {}).map((s) => (s as Obj)?.method).find(Boolean);
  return (
    <div>
      <KeyValues label="Measurement methodology" items={[
        ["meter", m.meter], ["why this meter", m.meter_choice], ["energy source", md.source ?? result.energy?.source],
        ["estimated", md.estimated ?? result.energy?.estimated], ["counter update period (s)", md.update_period_s],
        ["measured cycles", m.cycles], ["window sized by", w.sized_by], ["target window (s)", w.target_window_s],
        ["workload passes per cycle", w.repeats_per_cycle], ["window bracketing", m.window_bracketing],
        ["quantisation bound (max, relative)", m.quantisation_bound_max],
        ["idle baseline", b.enabled === false ? "off" : b.method], ["baseline power (W)", b.total_power_w],
        ["warm-up", m.warmup?.reason], ["steady state", m.steady_state], ["confidence intervals", statMethod],
        ["sampler interval (s)", m.sampler?.interval_s],
      ]} />
      <details>
        <summary>Full methodology (JSON)</summary>
        <pre className="json">{JSON.stringify(m, null, 1)}</pre>
      </details>
    </div>
  );
}

function Quality({ q }: { q: Obj | null | undefined }) {
  if (!q) return null;
  const tasks: Obj[] = q.tasks ?? [];
  return (
    <section aria-labelledby="q-h">
      <h3 id="q-h">Quality</h3>
      {q.meaningless ? <p className="badge-line"><span className="badge badge-meaningless">random weights</span> {q.meaningless_reason ?? "the model has random weights: every score is meaningless"}</p> : null}
      {q.error_message ? <p className="missing">{plainValue(q.error_type)}: {q.error_message}</p> : null}
      <table className="grid-table" aria-label="Quality tasks">
        <thead><tr><th scope="col">task</th><th scope="col">score ± stderr</th><th scope="col">chance</th><th scope="col">samples</th><th scope="col">evaluation energy (J)</th><th scope="col">correct answers per J [95% CI]</th></tr></thead>
        <tbody>
          {tasks.map((t) => {
            const p = (t.metrics ?? []).find((m: Obj) => m.name === t.primary_metric);
            return (
              <tr key={t.task}>
                <th scope="row">{t.task}</th>
                <td>{t.status === "failed" ? <span className="missing">failed: {t.error_message}</span> : `${p ? fmtPlusMinus(p.value, p.stderr) : "n/a"} ${t.primary_metric ?? ""}`}</td>
                <td>{fmtNum(t.chance_accuracy)}</td><td>{plainValue(t.samples)}</td>
                <td>{t.energy?.measured ? fmtNum(t.energy.energy_j) : <span className="missing">{t.energy?.not_measured_reason ?? "not measured"}</span>}</td>
                <td>{t.quality_per_joule !== null && t.quality_per_joule !== undefined
                  ? `${fmtNum(t.quality_per_joule)} [${fmtNum(t.quality_per_joule_ci95_low)}, ${fmtNum(t.quality_per_joule_ci95_high)}]`
                  : <span className="missing">{t.quality_per_joule_reason ?? "n/a"}</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

export function JobPage({ ds, row, state }: { ds: Dataset; row: Row | undefined; state: ViewState }) {
  const [load, setLoad] = useState<Load>({ state: "loading" });
  useEffect(() => {
    let live = true;
    if (!row) return;
    if (!jobUrl(row)) {
      setLoad({ state: "none" });
      return;
    }
    setLoad({ state: "loading" });
    loadJob(row).then((doc) => live && setLoad(doc ? { state: "ready", doc } : { state: "none" }),
      (err: Error) => live && setLoad({ state: "error", message: err.message }));
    return () => {
      live = false;
    };
  }, [row]);
  const back = formatHash({ ...state, view: "table", job: null });
  if (!row) {
    return (
      <section>
        <h2 tabIndex={-1}>Job not found</h2>
        <p>This leaderboard has no job {state.job}. <a href={back}>Back to the leaderboard</a></p>
      </section>
    );
  }
  const e = row.entry;
  const result = load.state === "ready" ? load.doc.result : null;
  const url = jobUrl(row);
  const warnings = (
    <section aria-labelledby="w-h">
      <h3 id="w-h">Warnings ({e.warnings.length})</h3>
      {e.warnings.length ? <ul className="warnings" data-testid="warnings">{e.warnings.map((w, i) => <li key={i}>{w}</li>)}</ul>
        : <p className="muted">none</p>}
    </section>
  );
  return (
    <article aria-labelledby="job-h" data-testid="job-page">
      <p><a href={back}>← Leaderboard</a></p>
      <h2 id="job-h" tabIndex={-1}>{e.label} <EntryBadges row={row} /></h2>
      <p className="muted">
        study {row.study.name} · job {e.job_id} · status {plainValue(e.status)} · rank {e.rank ?? "unranked"}
        {e.config_hash ? ` · config ${e.config_hash.slice(0, 12)}` : ""}
      </p>
      {e.synthetic ? <p className="banner banner-synthetic">Synthetic data: {e.synthetic_reason ?? "not a measurement"}</p> : null}
      {e.error ? <p className="missing">Failed: {[e.error.type, e.error.message].filter(Boolean).join(": ")}</p> : null}
      {!e.energy_measured ? <p className="missing" data-testid="not-measured-reason">Energy not measured: {e.energy_not_measured_reason ?? "not recorded"}</p> : null}
      {e.energy_estimated ? <p className="banner banner-estimated">Estimated energy: modelled by {e.energy_meter}, not read from a hardware counter.</p> : null}

      <Cards row={row} />
      {e.warnings.length ? (
        <p>
          <button type="button" className="linklike" onClick={() => document.getElementById("w-h")?.scrollIntoView()}>
            {e.warnings.length} measurement {e.warnings.length === 1 ? "warning" : "warnings"}
          </button>{" "}weaken these numbers: listed below.
        </p>
      ) : null}
      {load.state !== "ready" ? warnings : null}


      {load.state === "loading" ? <p role="status">Loading the job file…</p> : null}
      {load.state === "error" ? <p className="missing" role="alert">Could not read the job file: {load.message}</p> : null}
      {load.state === "none" || load.state === "error" || (load.state === "ready" && !load.doc.result) ? (
        <section aria-labelledby="all-h">
          <h3 id="all-h">All metrics</h3>
          <Metrics row={row} columns={ds.columns} />
        </section>
      ) : null}
      {load.state === "none" ? <p className="muted">This export has no job file for the job (exported without job files).</p> : null}

      {load.state === "ready" ? (
        <>
          <section aria-labelledby="ts-h">
            <h3 id="ts-h">Power and temperature over time</h3>
            <TimeSeries ts={load.doc.timeseries} />
          </section>
          <section aria-labelledby="ph-h">
            <h3 id="ph-h">Prefill / decode split</h3>
            <Phases phases={result?.phases} />
          </section>
          {warnings}
          {result ? (
            <>
              <section aria-labelledby="all-h">
                <h3 id="all-h">All metrics</h3>
                <Metrics row={row} columns={ds.columns} />
                <KeyValues label="Energy" items={[["meter", e.energy_meter], ["source", e.energy_source], ["scope", e.energy_scope],
                ["estimated", e.energy_estimated], ["baseline-adjusted energy missing because", e.energy_adjusted_reason]]} />
              </section>
              <section aria-labelledby="env-h">
                <h3 id="env-h">Environment</h3>
                <Environment env={result.environment} />
              </section>
              <section aria-labelledby="m-h">
                <h3 id="m-h">Measurement methodology</h3>
                <Methodology result={result} />
              </section>
              <Quality q={result.quality} />
              <section aria-labelledby="c-h">
                <h3 id="c-h">Configuration</h3>
                <details>
                  <summary>Every setting of the job ({flatten(result.config).length})</summary>
                  <KeyValues label="Configuration" items={flatten(result.config)} />
                </details>
              </section>
            </>
          ) : <p className="muted">The job wrote no result{load.doc.result_problem ? `: ${load.doc.result_problem}` : ""}.</p>}
        </>
      ) : null}
      <p>
        Raw JSON: {url ? <><a href={url} download>job file</a> · </> : null}<a href={row.studyUrl} download>study file</a>
      </p>
    </article>
  );
}
