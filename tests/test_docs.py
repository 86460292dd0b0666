"""The repository speaks of llem alone: what a reader sees names no outside file, folder, tool or
work arrangement of the environment llem was developed in.

Checked: README.md, docs/*.md, docs/validation/*.md and the notes (README.md) inside its data
folders, llem/, scripts/ and benchmarks/. Raw data recorded during runs (JSON, logs, the reports
the scripts wrote) stays as recorded and is not checked.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "FACTS.md": re.compile(r"FACTS\.md", re.I),  # a facts file that is not in the repository
    "../shared": re.compile(r"\.\./shared\b"),  # a folder outside the repository
    "$OUT": re.compile(r"\$\{?OUT\b"),  # an output variable of the development tooling
    "session": re.compile(r"\bsessions?\b", re.I),  # numbered work sessions: date runs instead
    "lent": re.compile(r"\blent\b", re.I),  # machines are named by hardware, not by who lent them
    "workplace": re.compile(r"\bworkplace", re.I),
    "device tool": re.compile(r"\bdevice tool\b", re.I),
}
# Technical uses of a forbidden word that say nothing about the development environment.
ALLOWED = (re.compile(r"\bnew session\b", re.I), re.compile(r"scope=\"session\""))
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".yaml", ".yml", ".txt", ".cfg", ".json"}


def checked_files() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "docs" / "validation").glob("*.md")),
             *sorted((REPO / "docs" / "validation").glob("*/README.md")), REPO / "pyproject.toml"]
    for folder in ("llem", "scripts", "benchmarks"):
        files += sorted(p for p in (REPO / folder).rglob("*")
                        if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts)
    return [f for f in files if f.is_file()]


def offences(text: str) -> list[tuple[int, str, str]]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        cleaned = line
        for allowed in ALLOWED:
            cleaned = allowed.sub("", cleaned)
        out += [(n, name, line.strip()) for name, rx in FORBIDDEN.items() if rx.search(cleaned)]
    return out


def test_the_check_covers_what_a_reader_sees():
    names = {p.relative_to(REPO).as_posix() for p in checked_files()}
    for expected in ("README.md", "docs/measurement.md", "docs/vllm.md", "docs/validation/README.md",
                     "docs/validation/HISTORY.md", "scripts/setup.sh", "pyproject.toml"):
        assert expected in names, expected
    assert any(n.startswith("llem/meters/") for n in names)
    assert any(n.startswith("benchmarks/gpu_validation/") for n in names)
    # raw data recorded during runs is not checked
    assert not any(n.endswith(("validation.json", "pooled.md", "log.txt")) for n in names)


@pytest.mark.parametrize("line, name", [
    ("see FACTS.md for the counter period", "FACTS.md"),
    ("staged with `../shared/device/stage-wheels.sh`", "../shared"),
    ("AFTER_EACH='tar czf $OUT/runs.tgz -C /tmp runs'", "$OUT"),
    ("**Fifth session: the run is the unit**", "session"),
    ("no H100 was lent in that session", "lent"),
    ("this workplace's pip serves it from local disk", "workplace"),
    ("### Running it on the GPU machine (device tool)", "device tool"),
])
def test_each_phrase_is_caught(line, name):
    assert name in {found for _, found, _ in offences(line)}


def test_technical_words_are_not_caught():
    assert offences('out="$out/run"; echo "$output"') == []
    assert offences("Each job runs in a new session (so a Ctrl-C reaches the study)") == []
    assert offences("excellent results; slurm facts; start_new_session=True") == []


def test_no_file_a_reader_sees_refers_to_the_development_environment():
    found = []
    for path in checked_files():
        for n, name, line in offences(path.read_text(errors="replace")):
            found.append(f"{path.relative_to(REPO)}:{n}: {name!r} in: {line[:120]}")
    assert not found, "\n".join(found)
