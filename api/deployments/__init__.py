"""Deployments: the contract's routes, the service they share with the pages and
the CLI, tenancy (who sees which deployment), idempotent writes and revisions."""
