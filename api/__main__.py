"""`python -m api serve [--host H] [--port P]` runs the service (what `make run`
does); `python -m api worker` runs operations without HTTP; any other arguments go to
the `shipstack` CLI (admin commands such as users, teams, keys, and the API client's
commands)."""

from __future__ import annotations

import argparse
import os
import sys

from stacks.settings import Settings


def serve(argv: list[str]) -> int:
    import uvicorn

    from api import cli
    from api.http.app import build_app
    from api.http.context import context_of
    from api.http.server import Server
    from api.worker_process import WorkerProcess

    parser = argparse.ArgumentParser(prog="python -m api serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if settings.service.role == "worker":
        print("shipstack: SHIPSTACK_ROLE=worker serves no HTTP; start it with `python -m api worker`", file=sys.stderr)
        return 2
    _warn_default_passphrase(settings)
    # On an empty database: create the first admin and print its key, once.
    cli.main(["bootstrap"])
    print(f"shipstack: serving http://{args.host}:{args.port} (API docs: http://{args.host}:{args.port}/api/docs)")
    print(f"shipstack: data in {settings.service.data_dir}; kubeconfig {settings.engine.kubeconfig}")
    fatal: list[str] = []
    server: Server | None = None

    def stop_serving(reason: str) -> None:
        """The worker process cannot run: writes accepted with nothing to run them would
        only queue, so stop serving (or never start) and say why."""
        fatal.append(reason)
        print(f"shipstack: {reason}; stopping the service", file=sys.stderr)
        if server is not None:
            server.should_exit = True

    child = None
    if settings.service.role == "all" and settings.service.worker_process:
        child = WorkerProcess(settings, on_fatal=stop_serving)
        child.start()
        app = build_app(settings, run_operations=False, wake_workers=child.notify)
        child.on_event = context_of(app.state).runner.publish
    else:
        app = build_app(settings)
    # The Pulumi SDK does not work under uvloop: use the plain asyncio loop.
    config = uvicorn.Config(app, host=args.host, port=args.port, loop="asyncio", log_level="info")
    server = Server(config, on_exit=child.stopping if child else None, on_stopped=child.stop if child else None)
    try:
        if not fatal:  # from here on, stop_serving stops the server itself
            server.run()
    finally:
        if child is not None:
            child.stop()
    return 1 if fatal else 0


def _warn_default_passphrase(settings: Settings) -> None:
    if settings.default_passphrase:
        print(
            "shipstack: WARNING: PULUMI_CONFIG_PASSPHRASE is the built-in one; set your own before this holds "
            "anything of value (a shared backend refuses to start without one)",
            file=sys.stderr,
        )


def worker(argv: list[str]) -> int:
    import logging

    from api.worker import run_worker
    from api.worker_process import CANNOT_RUN
    from stacks.exclusive import SingleWorkerError

    parser = argparse.ArgumentParser(prog="python -m api worker")
    parser.add_argument(
        "--from-serve", action="store_true",
        help="started by `python -m api serve`: stdin is its pipe (a byte wakes the workers, end of file stops)",
    )  # fmt: skip
    parser.add_argument("--events-fd", type=int, help="with --from-serve: the pipe the engine's events go to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if not args.from_serve:  # serve has said it already
        _warn_default_passphrase(settings)
    try:
        code = run_worker(settings, wakes=sys.stdin.fileno() if args.from_serve else None, events=args.events_fd)
    except SingleWorkerError as exc:
        print(f"shipstack: {exc}", file=sys.stderr)
        return CANNOT_RUN
    # The workers had their few seconds to finish. A pulumi still running (a destroy
    # retrying against a cluster that is gone) would hold the interpreter's exit, which
    # joins the Automation API's threads, for minutes: exit now instead. That pulumi dies
    # with this process (the wrapper's parent-death signal) and its operation is taken
    # over by the next worker, as after a kill.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        return serve(sys.argv[2:])
    if sys.argv[1:2] == ["worker"]:
        return worker(sys.argv[2:])
    from api import cli

    return cli.main(sys.argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
