"""Pulumi programs: a deployment spec in, Kubernetes resources out.

Nothing here talks to the Automation API; `stacks` runs these programs inline
and the repository's Pulumi.yaml runs the very same code from the CLI.
"""
