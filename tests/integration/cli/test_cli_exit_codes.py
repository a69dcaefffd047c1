"""Every exit code of the user commands, as a script sees it, against the real service:
0 ok, 1 a failed operation (a rollout that never becomes ready) or an unreachable
service, 2 usage (the parser's and the API's 400), 3 not found, 4 auth (no login,
a bad key, a key without the write scope). Each error names the API's message and
code and says what to do next."""

from __future__ import annotations

from pathlib import Path

import msgspec

from stacks.settings import Settings
from tests.integration.cli.conftest import Cli, serve_over_http
from tests.integration.conftest import add_user_with_key


def test_exit_codes(settings: Settings, tmp_path: Path, cli: Cli) -> None:
    # A short rollout timeout, so the never-ready rollout fails in seconds, not minutes.
    quick = settings.with_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    quick = msgspec.structs.replace(quick, engine=msgspec.structs.replace(quick.engine, rollout_timeout_s=20))
    with serve_over_http(quick) as svc:
        # 4: not logged in, a key the service refuses, a key that may only read.
        r = cli("ls")
        assert r.code == 4 and r.out == ""
        assert r.err.splitlines() == [
            "error: not logged in: no service URL and API key",
            "hint: run `shipstack login URL` (or set SHIPSTACK_URL and SHIPSTACK_TOKEN)",
        ]
        r = cli.login(svc.url, "ssk_not_a_real_key")
        assert r.code == 4 and "refused this API key" in r.err and not cli.config_file.exists()
        assert cli.login(svc.url, svc.key).code == 0
        r = cli("ls", env={"SHIPSTACK_TOKEN": "ssk_revoked_or_wrong"})
        assert r.code == 4 and "(unauthorized, HTTP 401)" in r.err and "run `shipstack login URL`" in r.err
        reader = add_user_with_key(svc.app, "reader", scopes=["deployments:read"])
        r = cli("deploy", "nginx", env={"SHIPSTACK_TOKEN": reader})
        assert r.code == 4 and "lacks the deployments:write scope (forbidden, HTTP 403)" in r.err
        assert cli("ls", env={"SHIPSTACK_TOKEN": reader}).code == 0

        # 2: the command line, and input the API refuses.
        r = cli("deploy")
        assert r.code == 2 and "the following arguments are required: template" in r.err
        r = cli("deploy", "nginx", "--env", "not-valid=1")
        assert r.code == 2 and "'not-valid' is not a valid variable name" in r.err
        r = cli("deploy", "no-such-template")
        assert r.code == 2 and "unknown template 'no-such-template'" in r.err and "(invalid_input, HTTP 400)" in r.err
        r = cli("deploy-image", "Not An Image!")
        assert r.code == 2 and "(invalid_input, HTTP 400)" in r.err

        # 3: whatever names a deployment that is not there.
        for words in (["status", "ghost"], ["logs", "ghost"], ["config", "ghost"], ["history", "ghost"],
                      ["rollback", "ghost", "1"], ["rm", "ghost"], ["auto-update", "ghost"]):  # fmt: skip
            r = cli(*words)
            assert r.code == 3, (words, r.err)
            assert "Deployment 'ghost' not found (not_found, HTTP 404)" in r.err, words
            assert "hint: `shipstack ls` lists the deployments you can see" in r.err

        # 1: a rollout that never becomes ready fails its operation...
        r = cli("deploy-image", "registry.example/app:1.0-rc.never-ready", "--port", "80", "--name", "cli-never")
        assert r.code == 1
        assert "error: create cli-never failed (operation " in r.err
        assert "hint: `shipstack status cli-never` and `shipstack logs cli-never`" in r.err
        r = cli("status", "cli-never", "--wait", "--timeout", "30")
        assert r.code == 1 and "status:  Error" in r.out
        r = cli("ls", "--json")
        assert r.code == 0 and '"status": "Error"' in r.out and '"lastError"' in r.out
        # ...and so does a service that cannot be reached.
        r = cli("ls", env={"SHIPSTACK_URL": "http://127.0.0.1:9"})
        assert r.code == 1 and "cannot reach http://127.0.0.1:9" in r.err

        # 0: cleaning up works.
        r = cli("rm", "cli-never")
        assert r.code == 0, r.err
        assert cli("ls").out == ""
