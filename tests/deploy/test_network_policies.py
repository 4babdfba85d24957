"""NetworkPolicies allow exactly the paths the stack uses, each side on its own and together.

The rendered policies are evaluated (tests/deploy/netpol.py) for every pair among our pods, a
stranger pod in the namespace that no policy names, the cluster DNS, and an ingress controller
in another namespace, on every port each of them serves.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.deploy.manifests import (
    NAME_LABEL,
    NAMESPACE,
    OVERLAYS,
    Resource,
    all_containers,
    find,
    of_kind,
    pod_labels,
    render,
    workloads,
)
from tests.deploy.netpol import Pod, Port, allowed, sends, takes

DNS = (("UDP", 53), ("TCP", 53))
KUBE_DNS = Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"},
               {"kubernetes.io/metadata.name": "kube-system"}, DNS)  # fmt: skip
# An ingress controller in its own namespace: the webapp's public side.
OUTSIDE = Pod("outside", "ingress-nginx", {NAME_LABEL: "ingress-nginx"},
              {"kubernetes.io/metadata.name": "ingress-nginx"}, ())  # fmt: skip
# Prometheus in the monitoring namespace: the one pod the metrics ports admit.
SCRAPER = Pod("scraper", "monitoring", {NAME_LABEL: "prometheus"},
              {"kubernetes.io/metadata.name": "monitoring"}, ())  # fmt: skip
METRICS = ("TCP", 9464)


def our_pods(resources: tuple[Resource, ...]) -> list[Pod]:
    """A pod per workload, plus a stranger in the namespace that no policy names."""
    namespace = find(resources, "Namespace", NAMESPACE)["metadata"]
    namespace_labels = {**namespace["labels"], "kubernetes.io/metadata.name": namespace["name"]}

    def ports(w: Resource) -> tuple[Port, ...]:
        return tuple(
            (p.get("protocol", "TCP"), p["containerPort"])
            for c in all_containers(w)
            for p in c.get("ports", [])
        )

    pods = [
        Pod(pod_labels(w)[NAME_LABEL], NAMESPACE, pod_labels(w), namespace_labels, ports(w))
        for w in workloads(resources)
    ]
    stranger = Pod(
        "stranger", NAMESPACE, {NAME_LABEL: "stranger"}, namespace_labels, (("TCP", 9999),)
    )
    return [*pods, stranger]


Path = tuple[str, str, Port]  # (source, target, port)


def paths(resources: tuple[Resource, ...], check: Callable[..., bool]) -> set[Path]:
    """Every (source, target, port) with one of our pods at an end that `check` lets through."""
    policies = of_kind(resources, "NetworkPolicy")
    ours = our_pods(resources)
    everyone = [*ours, KUBE_DNS, OUTSIDE, SCRAPER]
    return {
        (source.name, target.name, port)
        for source in everyone
        for target in everyone
        if source in ours or target in ours
        for port in target.ports
        if check(policies, source, target, port)
    }


def intended(ours: set[str]) -> dict[str, set[Path]]:
    """What the ingress side lets into our pods, the egress side out of them, and both."""
    everyone = {*ours, "kube-dns", "outside", "scraper"}
    used = {("webapp", "users", ("TCP", 50051))}
    scraped = {("scraper", service, METRICS) for service in ("users", "webapp")}
    if "postgres" in ours:
        used.add(("users", "postgres", ("TCP", 5432)))
    public = {(source, "webapp", ("TCP", 8000)) for source in everyone}  # open to all
    dns = {(pod, "kube-dns", port) for pod in ours for port in DNS}
    return {
        "ingress": used | public | scraped,
        "egress": used | dns,
        # Public paths from our own pods are shut on their egress side.
        "both": used | dns | scraped | {p for p in public if p[0] not in ours},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_paths_the_stack_uses(overlay: str) -> None:
    resources = render(overlay)
    ours = {p.name for p in our_pods(resources)}
    expected = intended(ours)
    # Each side on its own, so that dropping one side's rule is seen even where the other side
    # still blocks the path; then both together, which is what a connection needs.
    assert {p for p in paths(resources, takes) if p[1] in ours} == expected["ingress"]
    assert {p for p in paths(resources, sends) if p[0] in ours} == expected["egress"]
    assert paths(resources, allowed) == expected["both"]


def test_the_evaluator_sees_an_open_namespace_as_open() -> None:
    # Without policies every path is open: the exact-set test above owes its result to them.
    resources = render("postgres")
    ours = our_pods(resources)
    users = next(p for p in ours if p.name == "users")
    postgres = next(p for p in ours if p.name == "postgres")
    assert allowed([], OUTSIDE, postgres, ("TCP", 5432))
    assert not allowed(of_kind(resources, "NetworkPolicy"), OUTSIDE, postgres, ("TCP", 5432))
    assert allowed(of_kind(resources, "NetworkPolicy"), users, postgres, ("TCP", 5432))
