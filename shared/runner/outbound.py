"""Where the service may connect to on a user's behalf (SPEC 9 "Outbound URLs").

Model configs (and MCP servers, SPEC 10) name URLs that the runner connects to. They are
``http``/``https`` only, and checked twice: when saved (:func:`check_url`, the literal host)
and when connecting (:func:`resolve_and_check`, every address the name resolves to, so a name
cannot be re-pointed later). Link-local and cloud-metadata addresses are always refused;
loopback, private, unique-local, unspecified and other non-global addresses only unless
``allow_private`` (``AUTOMATIONS_OUTBOUND_ALLOW_PRIVATE``: true in embedded mode, false
otherwise, so that a fleet cannot be turned against its own network).

Note: :func:`resolve_and_check` resolves the name itself; an HTTP client that resolves it
again may, in principle, get another answer from a hostile DNS server with a zero TTL. Callers
that need the stronger guarantee connect to one of the returned addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = [
    "OutboundURLRefused",
    "address_refusal",
    "check_url",
    "resolve_and_check",
    "resolve_and_check_async",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: refused always, whatever ``allow_private`` says
_ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local, incl. 169.254.169.254 metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundURLRefused(ValueError):
    """A URL the service must not connect to; ``field`` names the request field (a 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64 or 6to4), which is where a
    connection to it really goes."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return None


def address_refusal(ip: IPAddress, allow_private: bool) -> str | None:
    """Why a connection to ``ip`` is refused, or None when it is allowed."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return address_refusal(embedded, allow_private)
    if any(ip in net for net in _ALWAYS_REFUSED if net.version == ip.version):
        return f"{ip} is a link-local or cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address (private addresses are not allowed)"
    if ip.is_unspecified:
        return f"{ip} is an unspecified address (private addresses are not allowed)"
    if ip.is_private or not ip.is_global or ip.is_multicast:
        return f"{ip} is a private or non-public address (private addresses are not allowed)"
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one, including the legacy IPv4 forms that resolvers
    accept (``2130706433``, ``0x7f.1``, ``127.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _host_and_port(url: str, field: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundURLRefused(field, f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise OutboundURLRefused(field, "must be an http or https URL")
    host = parts.hostname
    if not host:
        raise OutboundURLRefused(field, "must name a host")
    return host, port or (443 if parts.scheme == "https" else 80)


def check_url(url: str, field: str = "base_url", allow_private: bool = False) -> None:
    """The save-time check: scheme, host, and the host itself when it is a literal address."""
    host, _ = _host_and_port(url, field)
    ip = _literal_ip(host)
    if ip is not None:
        reason = address_refusal(ip, allow_private)
        if reason:
            raise OutboundURLRefused(field, f"refused: {reason}")
    elif not allow_private and _is_localhost_name(host):
        raise OutboundURLRefused(
            field, f"refused: {host} is a loopback name (private addresses are not allowed)"
        )


def _is_localhost_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in ("localhost", "localhost.localdomain") or name.endswith(".localhost")


def _check_resolved(
    host: str, infos: list[tuple[object, ...]], field: str, allow_private: bool
) -> list[str]:
    addresses: list[str] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        raw = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        ip = ipaddress.ip_address(raw)
        reason = address_refusal(ip, allow_private)
        if reason:
            raise OutboundURLRefused(field, f"refused: {host} resolves to {reason}")
        if raw not in addresses:
            addresses.append(raw)
    if not addresses:
        raise OutboundURLRefused(field, f"{host} resolves to no address")
    return addresses


def resolve_and_check(url: str, allow_private: bool = False, field: str = "base_url") -> list[str]:
    """The connect-time check: every address the host resolves to must be allowed.

    Returns the addresses. Raises :class:`OutboundURLRefused` for a refused one and lets
    :class:`socket.gaierror` (the name does not resolve) through: that is a connection failure,
    not a bad URL.
    """
    check_url(url, field, allow_private)
    host, port = _host_and_port(url, field)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _check_resolved(host, list(infos), field, allow_private)


async def resolve_and_check_async(
    url: str, allow_private: bool = False, field: str = "base_url"
) -> list[str]:
    """:func:`resolve_and_check` without blocking the event loop."""
    check_url(url, field, allow_private)
    host, port = _host_and_port(url, field)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _check_resolved(host, list(infos), field, allow_private)
