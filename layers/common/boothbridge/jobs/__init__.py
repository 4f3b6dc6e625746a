"""The PostgreSQL job queue: enqueue, claim, lease, fenced completion, retries, completion waiting."""
