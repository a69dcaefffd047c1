"""Auto-update: a deployment's policy (queued like every write) and why the
scheduler did what it did."""
