"""Answers only requests that name the scheduler in `Host`, so that a web page cannot reach it
through a visitor's browser by pointing a name of its own at the scheduler's address (DNS
rebinding): such a request names the page's host, whatever its method, and gets 403.

The scheduler's own names: loopback names (`localhost`, `*.localhost`), IP literals (v4 and
`[v6]`: no page can rebind those), the job's Service name and its `<job>.<namespace>`,
`<job>.<namespace>.svc` and `<job>.<namespace>.svc.cluster.local` forms, and the names added with
`--allowed-hosts`; any port. `/healthz` and `/readyz` are open to every name: kubelet probes them
by the pod's address, and they tell nothing. A request with no `Host` at all (HTTP/1.0) passes:
browsers always send one, so it cannot come from a rebinding page.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from scheduler.api.health import PROBE_PATHS
from scheduler.errors import ForbiddenError

log = logging.getLogger(__name__)

# Refusals are logged once per name; past this many names, no more (a client could send many).
MAX_LOGGED_NAMES = 100
# What of a refused Host a message or log line repeats.
MAX_SHOWN_CHARS = 100


class OwnHosts:
    """The names this scheduler answers to, and which refusals have been logged."""

    def __init__(self, job: str, namespace: str, allowed: Iterable[str] = ()) -> None:
        service = f"{job}.{namespace}"
        names = {job, service, f"{service}.svc", f"{service}.svc.cluster.local", *allowed}
        self._names = frozenset(name.lower().rstrip(".") for name in names)
        self._logged: set[str] = set()

    def __contains__(self, host: object) -> bool:
        """Whether a `Host` header's value (name or address, with or without a port) is ours."""
        if not isinstance(host, str):
            return False
        name = _name_of(host)
        if name is None:
            return False
        if name == "localhost" or name.endswith(".localhost") or name in self._names:
            return True
        return _is_ip_literal(name)

    def log_refusal(self, host: str) -> None:
        shown = host[:MAX_SHOWN_CHARS]
        if shown in self._logged or len(self._logged) > MAX_LOGGED_NAMES:
            return
        self._logged.add(shown)
        if len(self._logged) > MAX_LOGGED_NAMES:
            log.warning("refused more host names; the next ones are not logged")
            return
        log.warning(
            "refused requests for host %r: not one of this scheduler's names "
            "(add it with --allowed-hosts if it is)",
            shown,
        )


def _name_of(host: str) -> str | None:
    """The host of a `Host` value, lowercase, without port and trailing dot; None if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host.partition("]")
        if not bracket or (rest and not (rest.startswith(":") and _is_port(rest[1:]))):
            return None
        return name + bracket
    name, colon, port = host.partition(":")
    if colon and not _is_port(port):
        return None
    name = name.removesuffix(".")
    return name or None


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


def _is_ip_literal(name: str) -> bool:
    try:
        if name.startswith("["):
            ipaddress.IPv6Address(name[1:-1])
        else:
            ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def own_hosts_middleware(own: OwnHosts) -> Middleware:
    """Refuse (403) requests whose `Host` is not one of `own`; see the module doc."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PROBE_PATHS:
            for host in request.headers.getall(hdrs.HOST, ()):
                if host not in own:
                    own.log_refusal(host)
                    raise ForbiddenError(
                        f"host {host[:MAX_SHOWN_CHARS]!r} is not one of this scheduler's names: "
                        "call it by its address or Service name, or add the name with "
                        "--allowed-hosts"
                    )
        return await handler(request)

    return middleware
