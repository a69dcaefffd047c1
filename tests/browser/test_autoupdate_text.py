"""What a registry says reaches the deployment page as text (issue 11).

A tenant's registry answers the poll with an error message full of markup and
control characters; the real poller stores it (cleaned and cut), the status API
serves it, and the page shows it in the auto-update box as literal text: no
element is made of it and no script of it runs. No cluster: the service runs
without workers, the registry is a fake (httpx.MockTransport) playing the
hostile one.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import yaml
from sqlalchemy import select

from api.http.context import context_of
from persistence.models import Deployment, User
from programs.spec import AutoUpdate
from scheduler.poll import Poller
from scheduler.registry import RegistryClient
from tests.browser.conftest import USER, Web
from tests.browser.test_pages import Shot, expect, sign_in

MARKUP = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"


def fake_hostile_registry(request: httpx.Request) -> httpx.Response:
    message = f"{MARKUP}\x1b[2J\r\n[ERROR] forged\u202e" + "x" * 3000
    return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": message}]})


def test_a_registrys_error_text_shows_as_text(web_offline: Web, page: Any, shot: Shot) -> None:
    app = web_offline.app
    image = "registry.tenant.example/team/app:1.0.0"
    config = {
        "shipstack:template": "image",
        "shipstack:image": image,
        "shipstack:autoUpdate": msgspec.json.encode(AutoUpdate(enabled=True, policy="patch")).decode(),
    }
    with context_of(app.state).db.writes() as db, db.begin():
        owner = db.scalar(select(User.id).where(User.name == USER))
        db.add(
            Deployment(
                name="marked", owner_user_id=owner, template="image", image=image, status="Ready",
                stack_config=yaml.safe_dump({"config": config}),
            )
        )  # fmt: skip
    client = RegistryClient(transport=httpx.MockTransport(fake_hostile_registry))
    assert Poller(web_offline.settings, context_of(app.state).db.writes, client).poll().errors == 1

    sign_in(page, web_offline)
    page.goto(web_offline.url("/deployments/marked"))
    box = page.locator("#auto-status")
    expect(box).to_contain_text("Last check")
    shot(page, "autoupdate-registry-text")
    text = box.text_content() or ""
    assert MARKUP in text  # the very characters, shown
    assert "[ERROR] forged" in text and "\x1b" not in text and "\u202e" not in text
    assert box.locator("img, script").count() == 0
    assert page.title() != "pwned"
