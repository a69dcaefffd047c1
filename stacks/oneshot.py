"""One pulumi process per operation.

The SDK's `Stack` runs `pulumi stack select` when it is constructed, and its `up`,
`refresh` and `destroy` start two `stack output` and one `stack history` process after
the command itself; each costs a CLI start and a passphrase key derivation (~0.3 s of
CPU). shipstack needs none of that: every command names its stack (`--stack`), the
config comes in a file of our own (`--config-file`), the outputs follow from the spec
(`programs.deployment.outputs_for`) and the summary arrives as an engine event. So
`OneShotStack` binds a stack without selecting it and runs exactly the one command.

It reuses the SDK's own building blocks (the inline program's language server, the
engine event stream, the command runner), as `Stack.up` does, pinned with the SDK.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from pulumi.automation import _stack as sdk
from pulumi.automation._server import LanguageServer
from pulumi.automation.events import EngineEvent
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import language_pb2_grpc

OnEvent = sdk.OnEvent


class OneShotStack(sdk.Stack):
    """A stack of `workspace`, bound without `pulumi stack select`."""

    def __init__(self, name: str, workspace: sdk.Workspace) -> None:  # no super(): it would run `stack select`
        self.name = name
        self.workspace = workspace
        self._mode = sdk.StackInitMode.SELECT

    def run_once(self, command: list[str], on_event: OnEvent, **options: Any) -> sdk.CommandResult:
        """Runs `pulumi <command> <options> --stack NAME` and nothing else, with the
        workspace's inline program served to it as the SDK does; engine events go to
        `on_event` (its summary event carries the resource changes)."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_GRPC_CHANNEL_OPTIONS)
        language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(self.workspace.program), server)
        port = server.add_insecure_port(address="127.0.0.1:0")
        server.start()
        log_file, watcher, stop_event, temp_dir, events_server = self._setup_event_log(
            command[0], on_event, self.workspace.pulumi_version
        )
        args = [*command, *sdk._parse_extra_args(**options), f"--client=127.0.0.1:{port}"]
        args += ["--exec-kind", sdk.ExecKind.INLINE.value, "--event-log", log_file]
        try:
            return self._run_pulumi_cmd_sync(args)
        finally:
            sdk._cleanup(temp_dir, watcher, stop_event, lambda: server.stop(0), events_server)

    def up_once(self, on_event: OnEvent, **options: Any) -> sdk.CommandResult:
        return self.run_once(["up", "--yes", "--skip-preview"], on_event, **options)

    def refresh_once(self, on_event: OnEvent, **options: Any) -> sdk.CommandResult:
        return self.run_once(["refresh", "--yes", "--skip-preview"], on_event, **options)

    def destroy_once(self, on_event: OnEvent, **options: Any) -> sdk.CommandResult:
        return self.run_once(["destroy", "--yes", "--skip-preview"], on_event, **options)


__all__ = ["EngineEvent", "OnEvent", "OneShotStack"]
