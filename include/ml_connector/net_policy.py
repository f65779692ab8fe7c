"""Where credentials may be sent: the outbound URL policy of every connection (Exact, JAGGAER).

One rule, used wherever a connection names a host (connection loading in both hooks, their *Test* button,
``mlc config check``, ``mlc status``):

- ``https`` only, to a host whose every address is public (``ipaddress.is_global``): loopback, link-local (the
  cloud metadata address ``169.254.169.254`` included), private, shared (CGNAT), multicast, reserved and
  unspecified addresses are refused, and so is a host that does not resolve;
- a connection whose extra says ``{"sandbox": true}`` (the demo connections, the tests) may also use plain ``http``
  and loopback hosts, and only those: a sandbox connection never reaches a private or public host over ``http``.

Redirects are never followed to another origin (scheme, host, port): ``guard_redirects`` installs a response
hook on a ``requests.Session`` that refuses them before ``requests`` would re-send the request there. (``requests``
drops the ``Authorization`` header on a cross-host redirect, but a 307/308 re-sends the body, and the token
request's body holds the client secret.)

Known limit: the host is resolved when the connection is loaded, not for each connection the HTTP library opens;
a DNS answer that changes between the two (rebinding) is not caught here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from ml_connector.errors import ConfigError, RejectedError, TransientError

if TYPE_CHECKING:  # requests is not imported at run time here: `mlc config check` stays fast
    import requests

Resolver = Callable[[str], list[str]]


def _resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (raises ``OSError`` when it does not resolve)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def is_sandbox(extra: Mapping[str, Any] | None) -> bool:
    """``extra: {"sandbox": true}`` (a JSON boolean, or the strings true/yes/1 a form may store)."""
    value = (extra or {}).get("sandbox", False)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return value is True


def _kind(address: str) -> str | None:
    """Why an address is not public (``None``: it is)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)" if str(ip) == "169.254.169.254" else "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved (not public)"
    return None


@dataclass
class UrlCheck:
    """The outcome of :func:`check_url`: the URL (normalised) and every problem with it."""

    url: str
    problems: list[str] = field(default_factory=list)
    #: True when the only problem is that the host does not resolve (may be a passing DNS failure)
    unresolved: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def check_url(url: str, *, what: str, sandbox: bool = False, resolver: Resolver = _resolve) -> UrlCheck:
    """Check one URL against the policy. ``what`` names it in messages (``connection 'x': token_url``)."""
    raw = (url or "").strip()
    parts = urlsplit(raw)
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    how = (
        "use the service's public https URL; for a local sandbox mark the connection with extra "
        '{"sandbox": true} (allows http on loopback only)'
    )
    if scheme not in ("http", "https") or not host:
        return UrlCheck(raw, [f"{what}: {raw!r} is not an http(s) URL with a host; {how}"])
    if parts.username or parts.password:
        return UrlCheck(raw, [f"{what}: {raw!r} carries credentials in the URL; put them in login/password"])
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            addresses = ["127.0.0.1"]
        else:
            try:
                addresses = resolver(host)
            except (OSError, UnicodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                return UrlCheck(
                    raw,
                    [f"{what}: host {host!r} does not resolve ({reason}); check its spelling and this machine's DNS"],
                    unresolved=True,
                )
    kinds = {a: _kind(a) for a in addresses}
    loopback_only = bool(addresses) and all(k == "loopback" for k in kinds.values())
    if sandbox and loopback_only:
        return UrlCheck(raw)  # the sandbox exception: http or https, loopback only
    reasons: list[str] = []
    if scheme != "https":
        reasons.append("plain http (credentials would travel in clear)")
    bad = sorted({f"{a} ({k})" for a, k in kinds.items() if k is not None})
    if bad:
        reasons.append(f"host {host!r} is not a public address: {', '.join(bad)}")
    if not reasons:
        return UrlCheck(raw)
    limit = " (a sandbox connection may use loopback hosts only)" if sandbox else ""
    return UrlCheck(raw, [f"{what}: {raw!r} refused: {'; '.join(reasons)}{limit}; {how}"])


def enforce(checks: list[UrlCheck]) -> None:
    """Raise for the problems of ``checks``: ``ConfigError`` (a person must fix the connection), or
    ``TransientError`` when the only trouble is a host that does not resolve (DNS may be down for a moment: the
    task's retries try again; nothing is sent meanwhile)."""
    problems = [p for c in checks for p in c.problems]
    if not problems:
        return
    if all(c.unresolved or c.ok for c in checks):
        raise TransientError("; ".join(problems))
    raise ConfigError(problems)


def sandbox_note(sandbox: bool) -> str:
    """What status pages append for a sandbox connection."""
    return " [sandbox: http on loopback allowed]" if sandbox else ""


# ---------------------------------------------------------------------------------------------------------------
# redirects


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def refuse_cross_origin_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """``requests`` response hook: a redirect to another origin raises ``RejectedError`` instead of being followed
    (with the body and headers of a request that may hold a secret)."""
    if not response.is_redirect:
        return response
    location = response.headers.get("Location", "")
    target = urljoin(response.url, location)
    if _origin(target) != _origin(response.url):
        source = urlsplit(response.url)
        raise RejectedError(
            f"{source.scheme}://{source.netloc}{source.path} redirected to another host "
            f"({urlsplit(target).netloc or target!r}); not followed, so no credentials went there: "
            "check the connection's host",
            status=response.status_code,
        )
    return response


def guard_redirects(session: requests.Session) -> requests.Session:
    """Install :func:`refuse_cross_origin_redirect` on ``session`` (idempotent); returns the session."""
    hooks = session.hooks.setdefault("response", [])
    if refuse_cross_origin_redirect not in hooks:
        hooks.append(refuse_cross_origin_redirect)
    return session
