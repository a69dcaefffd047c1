"""Pulumi programs: a deployment spec in, Kubernetes resources out.

Nothing here talks to the Automation API; `stacks` runs these programs inline
and the repository's Pulumi.yaml runs the very same code from the CLI.

Pure, no pulumi import (cheap for the API and the scheduler):
- `programs.spec`: `DeploymentSpec` and spec <-> `shipstack:*` stack config.
- `programs.validate`, `programs.names`, `programs.images`: the input rules.
- `programs.describe`: revision messages.
- `programs.templates` + `programs/templates/*.yaml`: the template catalog as data,
  env wiring between services, generated secrets.
- `programs.labels`: names, labels and annotations of a deployment's objects.
- `programs.tenancy`: the operator's namespace rules (network, quota, container sizes);
  `programs.quantities` reads CPU/memory amounts, `programs.budget` checks a
  deployment fits its namespace.

The Pulumi program:
- `programs.deployment`: `program_from_config()`, the entry point, and `build()`.
- `programs.namespace`, `programs.workload`, `programs.exposure`: one builder module
  per group of objects; `programs.scope` is what they share, `programs.provider` the
  explicit Kubernetes provider.
- `programs/__main__.py`: the CLI entry point named by Pulumi.yaml.
"""
