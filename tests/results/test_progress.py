"""Progress goes to stderr in few lines for logs, rewrites one line on a terminal, and --quiet silences it."""
import io

from llem.results.progress import Progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_log_stream_gets_about_ten_lines():
    s = io.StringIO()
    p = Progress("loading results", stream=s)
    for i in range(1, 501):
        p(i, 500, f"job {i}")
    lines = s.getvalue().splitlines()
    assert 10 <= len(lines) <= 12
    assert lines[-1] == "llem: loading results 500/500 job 500"


def test_terminal_rewrites_one_line():
    s = Tty()
    p = Progress("plotting", stream=s)
    for i in range(1, 4):
        p(i, 3)
    out = s.getvalue()
    assert out.count("\r") == 3 and out.endswith("3/3\n")


def test_quiet_and_tiny_totals_print_nothing():
    s = io.StringIO()
    Progress("x", stream=s, quiet=True)(1, 100)
    Progress("x", stream=s, min_total=10)(1, 5)
    assert s.getvalue() == ""
