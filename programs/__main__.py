"""CLI entry point: `pulumi preview -s NAME` from the repository root runs this file.

Pulumi.yaml says `main: programs/`; the Python language host runs this folder's
`__main__.py` with only `programs/` itself on sys.path, so the repository root goes first
to make `programs` importable as the same package the service runs inline. The program
is `program_from_config()`, exactly what the stacks layer runs through the Automation API.
"""

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from programs.deployment import program_from_config  # noqa: E402

program_from_config()
