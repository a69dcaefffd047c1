"""`GET /api/deployments?limit=N`: pages in a stable order, each linking the next with
`Link: <...>; rel="next"` as GitHub's API does, a cursor that only this service can
make, and the caller's visibility and team context on every page."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import delete

from api.http.context import context_of
from persistence.models import Deployment
from stacks.settings import Settings
from tests.seed import MakeClient, Seed, bearer

NEXT = re.compile(r'^<([^>]+)>; rel="next"$')


@dataclass
class World:
    client: TestClient[Litestar]
    seed: Seed
    keys: dict[str, str]
    team: int
    visible: dict[str, list[str]]  # key name -> the names it sees, oldest first


@pytest.fixture
def world(client: TestClient[Litestar]) -> World:
    """25 deployments created in turn by alice (personal), bob (personal) and the red
    team (alice and carol are members), interleaved, so any page mixes them."""
    seed = Seed(context_of(client.app.state).db.reads)
    alice, bob, carol = seed.user("alice"), seed.user("bob"), seed.user("carol")
    red = seed.team("red", alice, members=[carol])
    visible: dict[str, list[str]] = {"alice": [], "bob": [], "carol": [], "red": []}
    for i in range(25):
        owner, team = [(alice, None), (bob, None), (carol, red)][i % 3]
        name = f"d{i:02d}-{owner.name}"
        seed.deployment(name, owner, team=team)
        if team is not None:
            for who in ("alice", "carol", "red"):
                visible[who].append(name)
        else:
            visible[owner.name].append(name)
    keys = {"alice": seed.key(alice), "bob": seed.key(bob), "carol": seed.key(carol)}
    return World(client, seed, keys, red.id, visible)


def walk(client: TestClient[Litestar], url: str, headers: dict[str, str]) -> tuple[list[list[str]], list[str]]:
    """Follows the `Link` header from `url` to the last page: (names per page, every next URL)."""
    pages: list[list[str]] = []
    links: list[str] = []
    while True:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        pages.append([item["name"] for item in response.json()])
        link = response.headers.get("link")
        if link is None:
            return pages, links
        match = NEXT.match(link)
        assert match, link
        url = match.group(1)
        links.append(url)
        assert len(pages) < 100, "the links never end"


def flat(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


def test_pages_cover_the_whole_list_once_in_the_same_order(world: World) -> None:
    h = bearer(world.keys["alice"])
    whole = [item["name"] for item in world.client.get("/api/deployments", headers=h).json()]
    assert whole == world.visible["alice"]  # no limit: the contract's whole array, oldest first
    pages, links = walk(world.client, "/api/deployments?limit=4", h)
    assert [len(p) for p in pages] == [4, 4, 4, 4, 1]
    assert flat(pages) == whole
    assert all(urlsplit(link).path == "/api/deployments" and parse_qs(urlsplit(link).query)["limit"] == ["4"]
               for link in links)  # fmt: skip
    # A page asked for again is the same page.
    assert walk(world.client, links[1], h)[0][0] == pages[2]


def test_a_page_exactly_at_the_end_has_no_next_link(world: World) -> None:
    h = bearer(world.keys["bob"])  # bob sees 8
    response = world.client.get("/api/deployments?limit=8", headers=h)
    assert len(response.json()) == 8 and "link" not in response.headers
    pages, _ = walk(world.client, "/api/deployments?limit=7", h)
    assert [len(p) for p in pages] == [7, 1]


def test_new_deployments_and_deleted_ones_do_not_shift_the_pages(world: World) -> None:
    h = bearer(world.keys["alice"])
    first = world.client.get("/api/deployments?limit=5", headers=h)
    url = NEXT.match(first.headers["link"]).group(1)  # type: ignore[union-attr]
    seen = [item["name"] for item in first.json()]
    with world.seed.factory() as db:
        db.execute(delete(Deployment).where(Deployment.name == seen[0]))
        db.commit()
    world.seed.deployment("zz-late", world.seed.user("dave"))  # another user's: nothing for alice
    rest = flat(walk(world.client, url, h)[0])
    assert rest == world.visible["alice"][5:]


def test_visibility_holds_on_every_page(world: World) -> None:
    for who in ("alice", "bob", "carol"):
        pages, _ = walk(world.client, "/api/deployments?limit=3", bearer(world.keys[who]))
        assert flat(pages) == world.visible[who]


def test_a_cursor_of_one_caller_shows_another_only_their_own(world: World) -> None:
    """A cursor is a position: bob following alice's link sees his deployments after it, nothing of hers."""
    first = world.client.get("/api/deployments?limit=6", headers=bearer(world.keys["alice"]))
    url = NEXT.match(first.headers["link"]).group(1)  # type: ignore[union-attr]
    bob_sees = flat(walk(world.client, url, bearer(world.keys["bob"]))[0])
    assert bob_sees and set(bob_sees) <= set(world.visible["bob"])
    assert not set(bob_sees) & set(world.visible["alice"])


@pytest.mark.parametrize("how", ["query", "header"])
def test_the_team_context_holds_on_every_page(world: World, how: str) -> None:
    h = bearer(world.keys["carol"])
    if how == "query":
        start = f"/api/deployments?team_id={world.team}&limit=2"
    else:
        start, h = "/api/deployments?limit=2", {**h, "X-Team-Id": str(world.team)}
    pages, links = walk(world.client, start, h)
    assert flat(pages) == world.visible["red"]
    if how == "query":
        assert all(parse_qs(urlsplit(link).query)["team_id"] == [str(world.team)] for link in links)
    bob = world.client.get(links[0], headers={**h, **bearer(world.keys["bob"])})
    assert bob.status_code == 403  # bob is not in the red team, whatever the page


def tampered(cursor: str) -> list[str]:
    body, _, mac = cursor.partition(".")
    flip = "A" if mac[0] != "A" else "B"
    return [
        f"{body}.{flip}{mac[1:]}",  # the signature changed
        f"MQ.{mac}",  # another position (row id 1) under the old signature
        body,  # no signature
        "",
        "not-a-cursor",
        "%00%ff",
        cursor + "x",
    ]


def test_a_changed_cursor_is_a_400(world: World) -> None:
    h = bearer(world.keys["alice"])
    first = world.client.get("/api/deployments?limit=3", headers=h)
    cursor = parse_qs(urlsplit(NEXT.match(first.headers["link"]).group(1)).query)["cursor"][0]  # type: ignore[union-attr]
    for bad in tampered(cursor):
        response = world.client.get("/api/deployments", params={"limit": 3, "cursor": bad}, headers=h)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "bad_cursor"
    assert world.client.get("/api/deployments", params={"limit": 3, "cursor": cursor}, headers=h).status_code == 200


def test_a_cursor_from_another_service_is_a_400(
    world: World, make_client: MakeClient, make_settings: Callable[..., Settings]
) -> None:
    """Another passphrase, another key: its cursors mean nothing here (the same
    database, so alice's key works on both services)."""
    other = make_client(make_settings(PULUMI_CONFIG_PASSPHRASE="another service's passphrase"))
    first = other.get("/api/deployments?limit=3", headers=bearer(world.keys["alice"]))
    url = NEXT.match(first.headers["link"]).group(1)  # type: ignore[union-attr]
    response = world.client.get(url, headers=bearer(world.keys["alice"]))
    assert response.status_code == 400 and response.json()["code"] == "bad_cursor"


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "null", "2.5"])
def test_a_limit_outside_1_to_1000_is_a_400(world: World, limit: str) -> None:
    response = world.client.get(f"/api/deployments?limit={limit}", headers=bearer(world.keys["alice"]))
    assert response.status_code == 400, response.text


def test_limit_1000_answers_everything(world: World) -> None:
    response = world.client.get("/api/deployments?limit=1000", headers=bearer(world.keys["alice"]))
    assert [i["name"] for i in response.json()] == world.visible["alice"] and "link" not in response.headers
