"""``llem config``: what this machine can measure (placeholder; extended by the meters work)."""
from __future__ import annotations

import json


def config_command(args: list[str]) -> int:
    from llem.capabilities import machine_report, format_report

    rep = machine_report()
    if "--json" in args:
        print(json.dumps(rep, indent=2))
    else:
        print(format_report(rep))
    return 0
