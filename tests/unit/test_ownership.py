"""stacks.ownership: whose is an existing `sd-<name>` namespace? (The cluster side is in
tests/integration/programs/test_isolation_cluster.py.)"""

from __future__ import annotations

import pytest

from stacks.ownership import check_namespace, foreign_namespace_problem

OURS = {"app.kubernetes.io/managed-by": "shipstack", "shipstack.dev/deployment": "shop"}


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (OURS, None),
        ({**OURS, "team": "x"}, None),
        (None, "not created by shipstack"),
        ({}, "not created by shipstack"),
        ({"shipstack.dev/deployment": "shop"}, "not created by shipstack"),
        ({"app.kubernetes.io/managed-by": "helm", "shipstack.dev/deployment": "shop"}, "not created by shipstack"),
        ({**OURS, "shipstack.dev/deployment": "other"}, "labelled for deployment 'other'"),
        ({"app.kubernetes.io/managed-by": "shipstack"}, "labelled for deployment None"),
    ],
)
def test_foreign_namespace_problem(labels: dict[str, str] | None, problem: str | None) -> None:
    found = foreign_namespace_problem("shop", labels)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        # The message names the namespace, the labels it needs and what to do.
        assert "namespace sd-shop already exists" in found
        assert "app.kubernetes.io/managed-by=shipstack and shipstack.dev/deployment=shop" in found
        assert "delete that namespace" in found


def test_no_kubeconfig_means_nothing_to_check() -> None:
    assert check_namespace(None, "shop") is None
