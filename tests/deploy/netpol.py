"""Which connections rendered NetworkPolicies allow, by the rules of the NetworkPolicy API.

A connection from pod A to port P of pod B is allowed when A may send it (no policy selects A
for Egress, or one of those that do has a rule matching B and P) and B may take it (likewise
for Ingress). The evaluator knows podSelector, namespaceSelector and numeric ports; anything
else (ipBlock, named ports, endPort) raises, so that a new kind of rule gets a matching check.

Example:
    >>> pod = Pod("users", "userstack", {"app.kubernetes.io/name": "users"}, {}, ())
    >>> allowed(policies, pod, other, ("TCP", 50051))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.deploy.manifests import selects

Port = tuple[str, int]  # (protocol, number)
# (policyType, the spec's list of rules, the rules' list of peers)
EGRESS = ("Egress", "egress", "to")
INGRESS = ("Ingress", "ingress", "from")


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: its namespace's labels, its own labels, the ports it serves."""

    name: str
    namespace: str
    labels: dict[str, str]
    namespace_labels: dict[str, str]
    ports: tuple[Port, ...]


def allowed(policies: list[dict[str, Any]], source: Pod, target: Pod, port: Port) -> bool:
    """Whether `source` may open a connection to `port` of `target`."""
    return sends(policies, source, target, port) and takes(policies, source, target, port)


def sends(policies: list[dict[str, Any]], source: Pod, target: Pod, port: Port) -> bool:
    """Whether the Egress side lets `source` open a connection to `port` of `target`."""
    return _permits(policies, source, EGRESS, target, port)


def takes(policies: list[dict[str, Any]], source: Pod, target: Pod, port: Port) -> bool:
    """Whether the Ingress side lets `target` take a connection to `port` from `source`."""
    return _permits(policies, target, INGRESS, source, port)


def _permits(
    policies: list[dict[str, Any]],
    pod: Pod,
    direction: tuple[str, str, str],
    peer: Pod,
    port: Port,
) -> bool:
    kind, rules, peers = direction
    selecting = [p for p in policies if _applies(p, pod) and kind in _types(p)]
    if not selecting:
        return True  # isolated in neither direction until some policy selects the pod
    return any(
        _peer_matches(policy, rule.get(peers), peer) and _port_matches(rule.get("ports"), port)
        for policy in selecting
        for rule in policy["spec"].get(rules) or []
    )


def _applies(policy: dict[str, Any], pod: Pod) -> bool:
    return bool(
        policy["metadata"]["namespace"] == pod.namespace
        and selects(policy["spec"]["podSelector"], pod.labels)
    )


def _types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    default = ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
    return list(spec.get("policyTypes", default))


def _peer_matches(policy: dict[str, Any], peers: list[dict[str, Any]] | None, peer: Pod) -> bool:
    if not peers:
        return True  # no `from`/`to`: every peer
    return any(_one_peer(policy, rule, peer) for rule in peers)


def _one_peer(policy: dict[str, Any], rule: dict[str, Any], peer: Pod) -> bool:
    unknown = set(rule) - {"podSelector", "namespaceSelector"}
    if unknown:
        raise ValueError(f"the evaluator does not know {sorted(unknown)}: extend it")
    if "namespaceSelector" in rule:
        in_namespace = selects(rule["namespaceSelector"], peer.namespace_labels)
    else:
        in_namespace = peer.namespace == policy["metadata"]["namespace"]
    return in_namespace and selects(rule.get("podSelector", {}), peer.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: Port) -> bool:
    if not ports:
        return True  # no `ports`: every port
    return any(_one_port(entry, port) for entry in ports)


def _one_port(entry: dict[str, Any], port: Port) -> bool:
    if set(entry) - {"protocol", "port"} or not isinstance(entry.get("port", 0), int):
        raise ValueError(f"the evaluator knows numeric ports only: {entry}")
    protocol, number = port
    return bool(entry.get("protocol", "TCP") == protocol and entry.get("port", number) == number)
