"""APScheduler jobs, the OCI registry client and auto-update policies."""
