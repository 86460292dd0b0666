"""``llem config [--json]``: what this machine can measure, and what ``energy=auto`` picks."""
from __future__ import annotations

import json

from llem.errors import ConfigError


def config_command(args: list[str]) -> int:
    from llem.cli.capabilities import format_report, machine_report

    unknown = [a for a in args if a != "--json"]
    if unknown:
        raise ConfigError(f"llem config: unknown argument {unknown[0]!r}; allowed: --json")
    rep = machine_report()
    print(json.dumps(rep, indent=2) if "--json" in args else format_report(rep))
    return 0
