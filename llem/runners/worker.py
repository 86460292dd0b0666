"""``python -m llem.runners.worker --config C --job-dir D --out R``: the job inside a venv
(``--serve``: several jobs, one after another, for a study that shares vLLM engines).

Runs the harness in *this* interpreter (never dispatching to another runner, so it cannot
recurse) and always writes a result to ``--out``: a failure becomes a failed result with the
error's type, message and traceback. Exit code 0 when completed, 1 when failed.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def run_one(config_path: str, job_dir: str, out: str) -> int:
    """One job in this interpreter; its result (completed or failed) always written to ``out``."""
    from llem.config.compose import validate
    from llem.measure.harness import _now
    from llem.runners.jobs import failed_result
    from llem.runners.local import LocalRunner

    config = validate(json.loads(Path(config_path).read_text()))
    started_at = _now()
    try:
        result = LocalRunner().run(config, Path(job_dir), progress=logging.getLogger("llem").info)
    except Exception as err:
        logging.getLogger("llem").exception("the job failed")
        result = failed_result(config, err, started_at)
    result.extra["runner"] = {"name": "venv", "python": sys.executable}
    result.save(out)
    return 0 if result.status == "completed" else 1


def serve(reply_fd: int) -> int:
    """Jobs one after another in this process, so a vLLM engine started by the first is reused
    by the next (a study's ``hydra.launcher.share_engine``). One JSON request per stdin line:
    ``{"config", "job_dir", "out", "log", "sharing"}``; each job's output goes to its own log,
    and ``{"out", "rc"}`` goes back on ``reply_fd`` when its result is written. EOF ends it."""
    import os

    from llem.config.vllm_options import SHARING_ENV

    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        os.environ[SHARING_ENV] = json.dumps(req["sharing"])
        if req.get("log"):
            sys.stdout.flush()
            sys.stderr.flush()
            fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        rc = run_one(req["config"], req["job_dir"], req["out"])
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(reply_fd, (json.dumps({"out": req["out"], "rc": rc}) + "\n").encode())
    if "llem.backends.vllm" in sys.modules:
        sys.modules["llem.backends.vllm"].release_engines()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llem.runners.worker")
    ap.add_argument("--config", help="ExperimentConfig as JSON")
    ap.add_argument("--job-dir")
    ap.add_argument("--out", help="where to write the ExperimentResult JSON")
    ap.add_argument("--serve", action="store_true", help="jobs from stdin, one per line, in this one process")
    ap.add_argument("--reply-fd", type=int, help="with --serve: where each finished job is announced")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    from llem.runners.logfilter import add_console_from_env

    add_console_from_env()  # llem's own lines to the terminal of a single `llem run`; the rest to its log
    if args.serve:
        if args.reply_fd is None:
            ap.error("--serve needs --reply-fd")
        return serve(args.reply_fd)
    if not (args.config and args.job_dir and args.out):
        ap.error("--config, --job-dir and --out are required (or --serve)")
    return run_one(args.config, args.job_dir, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
