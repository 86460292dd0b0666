"""``python -m llem.runners.worker --config C --job-dir D --out R``: the job inside a venv.

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llem.runners.worker")
    ap.add_argument("--config", required=True, help="ExperimentConfig as JSON")
    ap.add_argument("--job-dir", required=True)
    ap.add_argument("--out", required=True, help="where to write the ExperimentResult JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    from llem.runners.logfilter import add_console_from_env

    add_console_from_env()  # llem's own lines to the terminal of a single `llem run`; the rest to its log

    from llem.config.compose import validate
    from llem.measure.harness import _now
    from llem.runners.jobs import failed_result
    from llem.runners.local import LocalRunner

    config = validate(json.loads(Path(args.config).read_text()))
    started_at = _now()
    try:
        result = LocalRunner().run(config, Path(args.job_dir), progress=logging.getLogger("llem").info)
    except Exception as err:
        logging.getLogger("llem").exception("the job failed")
        result = failed_result(config, err, started_at)
    result.extra["runner"] = {"name": "venv", "python": sys.executable}
    result.save(args.out)
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
