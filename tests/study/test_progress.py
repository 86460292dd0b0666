"""Progress lines and the end-of-study summary table."""
import io

from llem.results.manifest import JobEntry, StudyResult
from llem.study.manifest import summarize
from llem.study.progress import Progress, summary_table


def _entry(i, status, **kw):
    return JobEntry(job_id=f"{i:04d}", index=i, grid_index=i, overrides=[f"batch={i + 1}", "output_len=4"],
                    config_hash=f"h{i}", backend="pytorch", model="tiny-llama", precision="fp32", batch=i + 1,
                    status=status, **kw)


def test_progress_counts_and_eta():
    out = io.StringIO()
    p = Progress(3, stream=out, keys={"batch"})
    jobs = [_entry(0, "completed"), _entry(1, "failed", error_type="ValueError", error_message="boom")]
    p.start(jobs[0])
    p.end(jobs[0])
    p.start(jobs[1])
    p.end(jobs[1])
    text = out.getvalue()
    assert "[0/3 done, 0 failed, 3 left] running 0000: batch=1" in text
    assert "[1/3 done, 0 failed, 2 left | ETA" in text
    assert "[1/3 done, 1 failed, 1 left | ETA" in text and "0001 failed: ValueError: boom" in text
    assert "output_len" not in text  # constant overrides are not repeated on every line


def test_quiet_progress_prints_nothing():
    out = io.StringIO()
    p = Progress(1, stream=out, quiet=True)
    p.start(_entry(0, "running"))
    p.end(_entry(0, "completed"))
    assert out.getvalue() == ""


def test_summary_table_rows_ci_and_failures():
    jobs = [_entry(0, "completed", energy_measured=True, energy_per_output_token_j=0.25,
                   energy_per_output_token_ci95=[0.2, 0.3], output_tokens_per_s=120.0,
                   energy_adjusted_per_output_token_j=0.125),
            _entry(1, "completed", energy_measured=False, output_tokens_per_s=99.0, warnings=2),
            _entry(3, "completed", energy_measured=True, energy_estimated=True, energy_per_output_token_j=3.5),
            _entry(2, "lost", error_type="JobKilled", error_message="killed by SIGKILL", log_path="0002/job.log")]
    m = StudyResult(study_name="s", study_design_hash="x", llem_version="0", created_at="t", updated_at="t",
                    study_dir="/tmp/s", jobs=jobs)
    m.summary = summarize(jobs)
    text = summary_table(m)
    lines = text.splitlines()
    assert "3 completed, 0 failed, 1 lost" in lines[0]
    assert "3.5 (estimated)" in next(l for l in lines if l.startswith("0003"))
    assert "measurement warnings (see each result.json): 0001 (2)" in text
    assert "all jobs: output_len=4" in text
    row0 = next(l for l in lines if l.startswith("0000"))
    assert "0.25 [0.2, 0.3]" in row0 and "0.125" in row0 and "120.0" in row0 and "completed" in row0
    assert "adj. J/token" in lines[2]
    assert "not measured" in next(l for l in lines if l.startswith("0001"))
    assert "failures:" in text and "0002 batch=3: lost: JobKilled: killed by SIGKILL (log: 0002/job.log)" in text
