"""The address a call comes from, for sign-in throttling: the peer's, or the one a verified proxy
(a client certificate over mTLS: the webapp) forwards for its own client."""

from __future__ import annotations

import ipaddress

import grpc

from users_service.calls import peer_identity_var

FORWARDED_FOR_KEY = "x-forwarded-for"


def client_address(context: grpc.aio.ServicerContext) -> str:
    """The client's IP address ("unknown" when the transport gives none)."""
    if peer_identity_var.get() is not None:
        forwarded = next(
            (str(v) for k, v in context.invocation_metadata() or () if k == FORWARDED_FOR_KEY),
            None,
        )
        if forwarded:
            candidate = forwarded.split(",")[0].strip()
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return _peer_host(context.peer() or "")


def _peer_host(peer: str) -> str:
    """'ipv4:10.0.0.1:5000' -> '10.0.0.1'; 'ipv6:[::1]:5000' -> '::1'."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return kind or "unknown"
