"""Entry point: ``llem run|config|results`` and ``llem --version``."""
from __future__ import annotations

import sys

USAGE = """usage: llem [--version] <command> [args]

commands:
  run      run an experiment, or a study with -m (all Hydra flags work: --cfg job, -m, ...)
  config   what this machine can measure (--json for JSON)
  results  show, compare, export, plot and push results
  serve    the results API and web page (uploads, leaderboard, live view of running studies)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    if argv[0] in ("--version", "-V"):
        from llem._version import __version__

        print(f"llem {__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    from llem.errors import LlemError

    try:
        if cmd == "run":
            from llem.cli.run import run_command

            return run_command(rest)
        if cmd == "config":
            from llem.cli.config_cmd import config_command

            return config_command(rest)
        if cmd == "results":
            from llem.cli.results_cmd import results_command

            return results_command(rest)
        if cmd == "serve":
            from llem.serve.cli import serve_command

            return serve_command(rest)
    except LlemError as err:
        print(f"llem: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("llem: interrupted", file=sys.stderr)
        return 130
    print(f"llem: error: unknown command {cmd!r}; allowed: run, config, results, serve", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
