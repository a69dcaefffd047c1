"""`pulumi-language-python`: the language plugin the pulumi CLI starts when it
runs this repository's Pulumi.yaml program (`pulumi preview -s NAME`).

Upstream's Go language host lives in its own module
(github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3), which the
Go module proxy reachable here does not serve, so it cannot be built. This
host serves the same gRPC LanguageRuntime protocol with the Python SDK's own
`LanguageServer`: the server the Automation API runs in-process for inline
programs, i.e. the very code path the shipstack service uses. It executes the
Pulumi.yaml `main` program (programs/__main__.py) inside the SDK's stack
runtime, with the stack config the engine passes in.

Plugin protocol: started as `pulumi-language-python [-flags...] ENGINE_ADDRESS`,
it prints the port it listens on as the first line of stdout and serves until
the engine kills it. The engine finds it on PATH as toolchain/bin/.
"""

from __future__ import annotations

import os
import runpy
import sys
from concurrent import futures
from pathlib import Path

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2_grpc


def entry_point(request) -> Path:
    """The program file the engine asks for, from the new or the legacy fields."""
    info = getattr(request, "info", None)
    if info is not None and info.program_directory:
        path = Path(info.program_directory) / (info.entry_point or ".")
    else:
        path = Path(request.pwd or os.getcwd()) / (request.program or ".")
    return path / "__main__.py" if path.is_dir() else path


class ProgramLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(program=lambda: None)

    def Run(self, request, context):
        main = entry_point(request)
        root = str(main.parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)
        self.program = lambda: runpy.run_path(str(main), run_name="__main__")
        return super().Run(request, context)


def main() -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)],
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProgramLanguageServer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # The engine interrupts its plugins when it is done with them: a normal end.
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
