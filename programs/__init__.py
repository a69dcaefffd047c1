"""Pulumi programs: a deployment spec in, Kubernetes resources out.

Nothing here talks to the Automation API; `stacks` runs these programs inline
and the repository's Pulumi.yaml runs the very same code from the CLI.

- `programs.spec`: `DeploymentSpec`, spec <-> `shipstack:*` stack config, revision
  messages and the input rules (pure, no pulumi import: cheap for the API).
- `programs.templates` + `programs/templates/*.yaml`: the template catalog as data,
  env wiring between services, generated secrets (pure, no pulumi import).
- `programs.deployment`: the Pulumi program itself, `program_from_config()`.
- `programs/__main__.py`: the CLI entry point named by Pulumi.yaml.
"""
