"""Latency of ``llem serve``'s list and leaderboard endpoints under concurrent readers.

    python benchmarks/serve/load.py --db sqlite  --out docs/validation/serve-load-cpu
    python benchmarks/serve/load.py --db postgres --out docs/validation/serve-load-cpu
           (a throwaway PostgreSQL on loopback, benchmarks/serve/pg_temp.py; or --database-url URL)

It stores ``--jobs`` results (SYNTHETIC TEST DATA, ``--jobs-per-study`` to a study) through the
server's own ingest path, starts ``llem serve`` on 127.0.0.1 in a process of its own, and sends
``--requests`` requests per endpoint from ``--clients`` concurrent clients (threads, one
keep-alive connection each), after ``--warmup`` unrecorded requests. Loopback only, bounded by
request counts (and ``--max-seconds`` as a guard). Endpoints:

- ``list``: ``GET /api/v1/jobs`` with a page of 50, sorted by energy per token, each request with a
  random filter (none, backend, batch, GPU, model) and page offset;
- ``leaderboard index``: ``GET /leaderboard/index.json`` (every stored study);
- ``leaderboard study``: ``GET /leaderboard/<study>.json`` for a random study.

The clients run on the same machine as the server, so on a small machine they compete with it for
CPU: the figures are end-to-end latencies seen by clients on that machine, not the server alone.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("pytorch", "vllm", "tensorrt")
MODELS = ("llama-3.2-1b", "llama-3.1-8b", "qwen2.5-7b", "mistral-7b")
GPUS = ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA A100-SXM4-80GB")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
NOTE = "SYNTHETIC TEST DATA: stored by benchmarks/serve/load.py to load the server; not measurements"


def synthetic_result(i: int, rng: random.Random):
    """A complete, valid result.json with made-up numbers (labelled so)."""
    from llem.measure.stats import headline_stats
    from llem.result import CycleResult, DeviceEnergy, EnergySummary, ExperimentResult, Latency, Percentiles

    backend, model, gpu = BACKENDS[i % 3], MODELS[(i // 3) % 4], GPUS[(i // 12) % 3]
    batch = BATCHES[(i // 36) % 8]
    jpt0 = 0.05 + rng.random()
    cycles = []
    for c in range(5):
        out_tok = 128 * batch
        jpt = jpt0 * (1 + 0.02 * rng.gauss(0, 1))
        tps = 500.0 * batch ** 0.7 * (1 + 0.02 * rng.gauss(0, 1))
        cycles.append(CycleResult(index=c, repeats=1, start_s=10.0 + c, duration_s=out_tok / tps, input_tokens=128 * batch,
                                  output_tokens=out_tok, energy_j=jpt * out_tok, energy_adjusted_j=0.7 * jpt * out_tok,
                                  per_device=[DeviceEnergy(index=0, name=gpu, energy_j=jpt * out_tok)],
                                  energy_per_output_token_j=jpt, output_tokens_per_s=tps, tokens_per_joule=1 / jpt))
    total_e = sum(c.energy_j for c in cycles)
    total_t = sum(c.output_tokens for c in cycles)
    dur = sum(c.duration_s for c in cycles)
    started = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp() + i * 60
    iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
    return ExperimentResult(
        llem_version="0.1.0", experiment_id=f"bench{i:07d}", config_hash=f"{i:064x}", started_at=iso(started),
        ended_at=iso(started + 60), backend=backend, model=model, precision="bf16", batch=batch, device="cuda:0",
        config={"backend": backend, "model": {"name": model}, "precision": "bf16", "batch": batch, "output_len": 128,
                "dataset": {"name": "synthetic", "input_len": 128, "num_prompts": batch}},
        input_tokens=sum(c.input_tokens for c in cycles), output_tokens=total_t, duration_s=dur,
        output_tokens_per_s=total_t / dur,
        energy=EnergySummary(measured=True, meter="synthetic", source=NOTE, scope="gpu", energy_j=total_e,
                             energy_adjusted_j=0.7 * total_e, baseline_power_w=70.0,
                             energy_per_output_token_j=total_e / total_t,
                             energy_adjusted_per_output_token_j=0.7 * total_e / total_t,
                             tokens_per_joule=total_t / total_e,
                             per_device=[DeviceEnergy(index=0, name=gpu, energy_j=total_e)]),
        cycles=cycles, stats=headline_stats(cycles),
        latency=Latency(method="synthetic", ttft_ms=Percentiles(n=10, mean=20.0, p50=19.0, p95=30.0),
                        itl_ms=Percentiles(n=10, mean=5.0, p50=5.0)),
        environment={"gpus": [{"index": 0, "name": gpu}]}, extra={"synthetic_test_data": NOTE})


def seed(url: str, n_jobs: int, per_study: int) -> float:
    from llem.results.manifest import JobEntry, StudyResult
    from llem.serve import auth, migrate
    from llem.serve.db import Database
    from llem.serve.store import ingest
    from llem.serve.upload import UploadBody, UploadedResult

    migrate.upgrade(url)
    db = Database(url)
    with db.write() as conn:
        uid = auth.ensure_user(conn, "bench")
        tid, _ = auth.create_token(conn, "bench")
    caller = auth.Caller(user_id=uid, user_name="bench", token_id=tid)
    rng = random.Random(7)
    t0 = time.monotonic()
    for s in range(0, n_jobs, per_study):
        results = [synthetic_result(i, rng) for i in range(s, min(n_jobs, s + per_study))]
        jobs = [JobEntry(job_id=f"{k:04d}", index=k, grid_index=k, overrides=[f"batch={r.batch}"],
                         config_hash=r.config_hash, backend=r.backend, model=r.model, precision=r.precision,
                         batch=r.batch, status="completed", job_dir=f"{k:04d}", result_path=f"{k:04d}/result.json")
                for k, r in enumerate(results)]
        manifest = StudyResult(study_name=f"load-study-{s // per_study:04d}", study_design_hash=f"{s:064x}",
                               llem_version="0.1.0", created_at=results[0].started_at, updated_at=results[-1].ended_at,
                               finished_at=results[-1].ended_at, study_dir="/synthetic", jobs=jobs,
                               summary={"note": NOTE})
        body = UploadBody(study=manifest, results=[UploadedResult(job_id=j.job_id, result=r)
                                                   for j, r in zip(jobs, results)])
        ingest(db, caller, body, body_sha256="0" * 64, body_bytes=0)
        done = min(n_jobs, s + per_study)
        if done % (10 * per_study) == 0 or done == n_jobs:
            print(f"seeded {done}/{n_jobs} jobs", file=sys.stderr, flush=True)
    db.dispose()
    return time.monotonic() - t0


def start_server(url: str, port: int):
    llem = shutil.which("llem") or str(Path(sys.executable).parent / "llem")
    proc = subprocess.Popen([llem, "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", url,
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llem serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/api/v1/info")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llem serve did not start in 120 s")


def load(port: int, paths, n_requests: int, clients: int, warmup: int, max_seconds: float) -> dict:
    """Send ``n_requests`` (after ``warmup``) GETs drawn from ``paths()`` from ``clients`` threads."""
    lock = threading.Lock()
    todo = {"n": n_requests + warmup}
    lat_ms, errors = [], []
    deadline = time.monotonic() + max_seconds

    def worker(seed_: int):
        rng = random.Random(seed_)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                if todo["n"] <= 0:
                    break
                todo["n"] -= 1
                record = todo["n"] < n_requests
            path = paths(rng)
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException) as err:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                r = err
            dt = (time.perf_counter() - t0) * 1e3
            with lock:
                if record:
                    lat_ms.append(dt)
                    if not ok:
                        errors.append(f"{path}: {getattr(r, 'status', r)}")
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    q = statistics.quantiles(lat_ms, n=100, method="inclusive") if len(lat_ms) >= 2 else [float("nan")] * 99
    return {"requests": len(lat_ms), "errors": len(errors), "error_examples": errors[:3],
            "p50_ms": round(q[49], 2), "p90_ms": round(q[89], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(max(lat_ms), 2) if lat_ms else None, "throughput_rps": round(len(lat_ms) / wall, 1),
            "complete": len(lat_ms) == n_requests}


def _cpu_model() -> str:
    from llem.environment.snapshot import cpu_model

    return cpu_model() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--database-url", help="an existing, empty database (default: a temporary one)")
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--jobs-per-study", type=int, default=100)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=2_000, help="recorded requests per endpoint")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--max-seconds", type=float, default=600.0, help="guard per endpoint")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", help="folder for <db>-<clients>c.json (the figures and how they were made)")
    a = p.parse_args(argv)
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="llem-load-"))
    pg = None
    try:
        if a.database_url:
            url = a.database_url
        elif a.db == "sqlite":
            url = f"sqlite:///{tmp / 'load.db'}"
        else:
            sys.path.insert(0, str(HERE))
            from pg_temp import TempPostgres

            pg = TempPostgres().start()
            url = pg.create_database("llem_load")
        seed_s = seed(url, a.jobs, a.jobs_per_study)
        port = a.port or _free_port()
        server = start_server(url, port)
        try:

            idx = json.loads(_get(port, "/leaderboard/index.json"))
            files = [s["file"] for s in idx["studies"]]
            filters = [lambda r: "", lambda r: f"&backend={r.choice(BACKENDS)}", lambda r: f"&batch={r.choice(BATCHES)}",
                       lambda r: "&gpu=" + r.choice(GPUS).replace(" ", "%20"), lambda r: f"&model={r.choice(MODELS)}"]
            endpoints = {
                "list": lambda r: (f"/api/v1/jobs?limit=50&sort=energy_per_output_token_j&offset={r.randrange(0, 1000)}"
                                   + r.choice(filters)(r)),
                "leaderboard index": lambda r: "/leaderboard/index.json",
                "leaderboard study": lambda r: f"/leaderboard/{r.choice(files)}",
            }
            figures = {name: load(port, fn, a.requests, a.clients, a.warmup, a.max_seconds)
                       for name, fn in endpoints.items()}
        finally:
            server.terminate()
            server.wait(60)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"date": datetime.now(timezone.utc).date().isoformat(), "database": a.db,
              "command": "python benchmarks/serve/load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
                          "python": platform.python_version(), "load_avg_before": load_before},
              "stored_jobs": a.jobs, "studies": -(-a.jobs // a.jobs_per_study), "clients": a.clients,
              "seed_s": round(seed_s, 1), "endpoints": figures}
    print(f"{a.db}: {a.jobs} jobs in {report['studies']} studies (seeded in {seed_s:.0f} s), {a.clients} clients")
    print(f"{'endpoint':<20} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    for name, f in figures.items():
        print(f"{name:<20} {f['requests']:>8} {f['errors']:>6} {f['p50_ms']:>8} {f['p90_ms']:>8} {f['p99_ms']:>8} "
              f"{f['throughput_rps']:>7}")
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{a.db}-{a.clients}c.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0 if all(f["errors"] == 0 and f["complete"] for f in figures.values()) else 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> bytes:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    return r.read()


if __name__ == "__main__":
    raise SystemExit(main())
