"""`python -m api serve [--host H] [--port P]` runs the service (what `make run`
does); any other arguments go to the `shipstack` CLI (admin commands such as users,
teams, keys, and the API client's commands)."""

from __future__ import annotations

import argparse
import sys


def serve(argv: list[str]) -> int:
    import uvicorn

    from api import cli
    from api.http.app import build_app
    from stacks.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m api serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    # On an empty database: create the first admin and print its key, once.
    cli.main(["bootstrap"])
    print(f"shipstack: serving http://{args.host}:{args.port} (API docs: http://{args.host}:{args.port}/api/docs)")
    print(f"shipstack: data in {settings.service.data_dir}; kubeconfig {settings.engine.kubeconfig}")
    # The Pulumi SDK does not work under uvloop: use the plain asyncio loop.
    uvicorn.run(build_app(settings), host=args.host, port=args.port, loop="asyncio", log_level="info")
    return 0


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        return serve(sys.argv[2:])
    from api import cli

    return cli.main(sys.argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
