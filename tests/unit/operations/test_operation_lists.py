"""`GET /api/deployments/{name}/operations`: the deployment row's latest operations,
newest first, without their progress; nobody else's, not those of an earlier
deployment that had the same name."""

from __future__ import annotations

from datetime import timedelta

from litestar import Litestar
from litestar.testing import TestClient

from api.http.context import context_of
from persistence import operations as ops
from persistence.base import utcnow
from persistence.models import Deployment
from tests.seed import Seed, bearer


def test_the_list_is_the_rows_newest_first_without_progress(client: TestClient[Litestar]) -> None:
    factory = context_of(client.app.state).db.writes
    seed = Seed(factory)
    alice, bob = seed.user("alice"), seed.user("bob")
    earlier = seed.deployment("web", alice)
    seed.deployment("api", alice)  # SQLite reuses the largest row id once it is deleted: keep it taken
    with factory() as db, db.begin():
        old = ops.enqueue(db, db.get(Deployment, earlier.id), "config", {}, "of the earlier web")
        db.delete(db.get(Deployment, earlier.id))
    web = seed.deployment("web", alice)
    with factory() as db, db.begin():
        row = db.get(Deployment, web.id)
        made = [ops.enqueue(db, row, "config", {}, f"change {i}") for i in range(3)]
        for i, op in enumerate(made):
            op.created_at = utcnow() + timedelta(seconds=i)
            op.progress = [{"type": "step", "sequence": n} for n in range(300)]
    listed = client.get("/api/deployments/web/operations", headers=bearer(seed.key(alice))).json()["operations"]
    assert [op["message"] for op in listed] == ["change 2", "change 1", "change 0"]
    assert old.id not in {op["id"] for op in listed}
    assert all("progress" not in op and op["deployment"] == "web" for op in listed)
    one = client.get(f"/api/operations/{made[0].id}", headers=bearer(seed.key(alice))).json()
    assert len(one["progress"]) == 300  # one operation keeps its progress
    assert client.get("/api/deployments/web/operations", headers=bearer(seed.key(bob))).status_code == 404
