"""The whole service: the Litestar app with the deployment routes and the
operation runner that carries out what they accept."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State

from api import autoupdate, deployments, observe, pages
from api.app import create_app
from scheduler.failures import RollbackOnFailure
from scheduler.jobs import AutoUpdateScheduler
from stacks.runner import Runner
from stacks.settings import Settings


def build_app(settings: Settings | None = None, *, run_operations: bool = True) -> Litestar:
    """`run_operations=False` serves the API without workers or the auto-update
    scheduler (another process runs them)."""
    settings = settings or Settings.from_env()

    def start_runner(app: Litestar) -> None:
        state: State = app.state
        state.runner = Runner(
            settings, state.write_session_factory, on_failed=RollbackOnFailure(settings, state.write_session_factory)
        )
        state.auto_update = AutoUpdateScheduler(settings, state.engine, notify=state.runner.notify)
        if run_operations:
            state.runner.start()
            state.auto_update.start()  # leads only while it holds the scheduler lease

    def stop_runner(app: Litestar) -> None:
        scheduler: AutoUpdateScheduler | None = getattr(app.state, "auto_update", None)
        if scheduler is not None:
            scheduler.stop()
        runner: Runner | None = getattr(app.state, "runner", None)
        if runner is not None:
            runner.stop()

    return create_app(
        settings,
        extra_route_handlers=[*deployments.ROUTES, *autoupdate.ROUTES, *observe.ROUTES, *pages.ROUTES],
        template_config=pages.template_config(),
        on_startup=[start_runner],
        on_shutdown=[stop_runner, observe.close_kube],
    )
