"""A real OCI registry on loopback (and crane) for the auto-update tests and bench; see local.py."""
