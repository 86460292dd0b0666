"""Studies: the sweep grid, per-job processes, the failure-proof manifest, resume, dry run."""
