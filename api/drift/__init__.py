"""Drift detection: a deployment's drift settings, its last check, and drift checks
and reconciles on demand (each queued like every write)."""
