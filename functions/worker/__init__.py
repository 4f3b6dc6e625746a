"""The worker function: run one job by id (Lambda), or the claim loop (local, self-hosted)."""
