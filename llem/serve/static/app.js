// llem's results page: running studies (server-sent events) and stored studies (the leaderboard files).
// Every value from the server is shown with textContent: stored text is never parsed as HTML.
"use strict";

const live = new Map();      // live study id -> state {id, name, owner, status, counts, jobs, power}
const SPARK_POINTS = 120;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

function spark(samples) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 160 28");
  const pts = samples.slice(-SPARK_POINTS);
  if (pts.length > 1) {
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    const ws = pts.map(p => p[1]);
    const lo = Math.min(...ws), hi = Math.max(...ws);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.map(([t, w]) => {
      const x = t1 > t0 ? (t - t0) / (t1 - t0) * 158 + 1 : 1;
      const y = hi > lo ? 27 - (w - lo) / (hi - lo) * 26 : 14;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    }).join(" "));
    svg.append(line);
  }
  return svg;
}

function powerCell(st, job) {
  const gpus = (st.power || {})[job.job_id] || {};
  const keys = Object.keys(gpus).sort();
  if (!keys.length) {
    return job.status === "running" && st.power_unavailable_reason
      ? el("span", { class: "muted" }, "power not readable: " + st.power_unavailable_reason) : "";
  }
  const box = el("div", {});
  for (const g of keys) {
    const s = gpus[g];
    const last = s[s.length - 1];
    box.append(el("div", { class: "power", "data-gpu": g }, spark(s), ` GPU ${g}: `,
      el("span", { class: "power-w" }, `${fmt(last[1], 4)} W`)));
  }
  return box;
}

function renderLive(st) {
  const list = document.getElementById("live-list");
  let card = list.querySelector(`[data-live-id="${st.id}"]`);
  const fresh = el("div", { class: "card", "data-live-id": st.id, "data-live-name": st.name });
  const c = st.counts || {};
  // a study killed outright never says it ended: after 2 minutes without news, say so
  const quietS = (Date.now() - new Date(st.updated_at).getTime()) / 1000;
  const stale = st.status === "running" && quietS > 120
    ? el("span", { class: "badge warn" }, `no news for ${Math.round(quietS / 60)} min`) : null;
  fresh.append(
    el("h3", {}, st.name, el("span", { class: "badge live-status" }, st.status), stale),
    el("div", { class: "meta" },
      `${c.completed || 0} completed, ${c.failed || 0} failed, ${c.lost || 0} lost, ${c.running || 0} running, ` +
      `${c.pending || 0} pending · by ${st.owner} · last news ${when(st.updated_at)}`));
  const tbody = el("tbody", {});
  for (const j of st.jobs || []) {
    tbody.append(el("tr", { "data-job-id": j.job_id },
      el("td", {}, j.job_id),
      el("td", {}, (j.overrides || []).join(" ")),
      el("td", { class: `status status-${j.status}` }, j.status),
      el("td", { class: "num" }, j.energy_per_output_token_j !== null && j.energy_per_output_token_j !== undefined
        ? `${fmt(j.energy_per_output_token_j)} J/token` : (j.status === "completed" && j.energy_measured === false ? "energy not measured" : "")),
      el("td", { class: "num" }, j.output_tokens_per_s ? `${fmt(j.output_tokens_per_s)} tok/s` : ""),
      el("td", {}, j.error_type ? `${j.error_type}: ${j.error_message || ""}` : ""),
      el("td", {}, powerCell(st, j))));
  }
  fresh.append(el("table", {}, el("thead", {}, el("tr", {}, ...["job", "overrides", "status", "energy", "throughput",
    "error", "GPU power (read beside the job)"].map(h => el("th", {}, h)))), tbody));
  if (card) card.replaceWith(fresh); else list.prepend(fresh);
  document.getElementById("live-empty").hidden = live.size > 0;
}

function connectLive() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/api/v1/live/stream");
  es.onopen = () => { conn.textContent = "live feed connected"; conn.className = "conn ok"; };
  es.onerror = () => { conn.textContent = "live feed lost: reconnecting…"; conn.className = "conn down"; };
  es.addEventListener("snapshot", ev => {
    const snap = JSON.parse(ev.data);
    live.clear();
    document.getElementById("live-list").replaceChildren();
    for (const st of snap.studies.slice().reverse()) { live.set(st.id, st); renderLive(st); }
    document.getElementById("live-empty").hidden = live.size > 0;
  });
  es.addEventListener("study", ev => {
    const st = JSON.parse(ev.data).study;
    const old = live.get(st.id);
    st.power = old ? old.power : {};
    const finished = old && old.status === "running" && st.status !== "running";
    live.set(st.id, st);
    renderLive(st);
    if (finished) loadStored();
  });
  es.addEventListener("power", ev => {
    const p = JSON.parse(ev.data);
    const st = live.get(p.live_id);
    if (!st) return;
    st.power = st.power || {};
    const job = (st.power[p.job_id] = st.power[p.job_id] || {});
    const s = (job[p.gpu_index] = job[p.gpu_index] || []);
    s.push(...p.samples);
    if (s.length > 900) s.splice(0, s.length - 900);
    renderLive(st);
  });
}

async function leaderboardTable(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (!r.ok) return el("p", { class: "muted" }, `could not read ${url}: HTTP ${r.status}`);
  const doc = await r.json();
  const tbody = el("tbody", {});
  for (const e of doc.entries) {
    const m = (e.metrics || {}).energy_per_output_token_j || {};
    const ci = m.ci95_low !== null && m.ci95_low !== undefined ? ` [${fmt(m.ci95_low)}, ${fmt(m.ci95_high)}]` : "";
    const energy = m.value !== null && m.value !== undefined
      ? `${fmt(m.value)}${ci} J/token${e.energy_estimated ? " (estimated)" : ""}`
      : (e.energy_not_measured_reason || (e.error ? `${e.error.type}: ${e.error.message}` : "not measured"));
    const tps = ((e.metrics || {}).output_tokens_per_s || {}).value;
    tbody.append(el("tr", { "data-job-id": e.job_id },
      el("td", {}, e.rank === null ? "–" : e.rank), el("td", {}, e.job_id), el("td", {}, e.label),
      el("td", { class: `status status-${e.status}` }, e.status), el("td", { class: "num" }, energy),
      el("td", { class: "num" }, tps ? `${fmt(tps)} tok/s` : ""),
      el("td", {}, e.synthetic ? "synthetic test data" : (e.warnings || []).length ? `${e.warnings.length} warning(s)` : "")));
  }
  return el("table", {}, el("thead", {}, el("tr", {}, ...["rank", "job", "configuration", "status",
    "energy per output token [95% CI]", "throughput", "notes"].map(h => el("th", {}, h)))), tbody);
}

async function loadStored() {
  let page;
  try {
    const r = await fetch("/api/v1/studies?limit=50&sort=updated_at&order=desc");
    if (!r.ok) return;
    page = await r.json();
  } catch (err) { return; }
  const list = document.getElementById("stored-list");
  const open = new Set([...list.querySelectorAll("details[open]")].map(d => d.dataset.studyId));
  list.replaceChildren();
  for (const s of page.items) {
    const det = el("details", { class: "card", "data-study-id": s.id, "data-study-name": s.name });
    det.append(el("summary", {}, el("strong", {}, s.name),
      ` · ${s.n_results} result(s) of ${s.n_jobs} job(s) · uploaded by ${s.owner} ${when(s.updated_at)}`,
      el("span", { class: "badge warn" }, s.verified ? "verified" : "unverified upload")));
    const body = el("div", {}, el("p", { class: "muted" }, "loading…"));
    det.append(body);
    det.addEventListener("toggle", async () => {
      if (det.open && !det.dataset.loaded) {
        det.dataset.loaded = "1";
        body.replaceChildren(await leaderboardTable(s.leaderboard_url));
      }
    });
    list.append(det);
    if (open.has(String(s.id))) det.open = true;
  }
  document.getElementById("stored-empty").hidden = page.items.length > 0;
}

document.addEventListener("DOMContentLoaded", () => {
  connectLive();
  loadStored();
  setInterval(loadStored, 10000);
});
