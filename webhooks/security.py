"""Where a webhook may go: http(s) only, and never into the hub's own network (SSRF).

A tenant chooses the URL, and the hub's workers sit inside a private network next to the
database, Redis and the cloud's metadata service. So every address a URL resolves to must be
public, unless the operator allows private networks (a self-hosted hub whose integrators live
on the same LAN) or loopback (development and tests).

The URL is checked when a subscription is saved, so the integrator hears at once, and again on
every connection: DNS may have changed since, or answer differently on purpose (DNS
rebinding). The connection check vets the very addresses it then connects to; nothing is
resolved twice.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SocketAddress = tuple[Any, ...]


class UnsafeDestination(Exception):
    """The URL, or an address it resolves to, is refused.

    Deliberately not an OSError: urllib3 and requests retry or wrap those, and this must reach
    the caller unchanged so the delivery is given up on rather than retried.
    """


def _address_kind(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one. The order matters:
    `::1` is also in a reserved block and 169.254/16 also counts as private."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # `::ffff:10.0.0.1` reaches 10.0.0.1; Python 3.11 does not look through it.
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_multicast:
        return "multicast"
    if address.is_link_local:
        return "link-local"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        # Shared address space (100.64.0.0/10) and the like: not reachable from the internet.
        return "private"
    return None


def _allowed_kinds() -> set[str]:
    kinds: set[str] = set()
    if getattr(settings, "HUB_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", False):
        kinds |= {"private", "loopback", "link-local"}
    if getattr(settings, "HUB_WEBHOOKS_ALLOW_LOOPBACK", False):
        kinds.add("loopback")
    return kinds


def address_refusal(address: str) -> str | None:
    """Why the hub refuses to connect to `address` under the current settings, or None."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    kind = _address_kind(parsed)
    if kind is None or kind in _allowed_kinds():
        return None
    return f"It resolves to {parsed}, a {kind} address, which webhooks may not reach."


def destination_resolve(host: str, port: int) -> list[tuple[int, SocketAddress]]:
    """The addresses of `host`, each one vetted. Raises UnsafeDestination if any is refused (a
    name that resolves to both a public and a private address is not trusted either), and
    socket.gaierror when the name does not resolve."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    addresses: list[tuple[int, SocketAddress]] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        refusal = address_refusal(str(sockaddr[0]))
        if refusal:
            raise UnsafeDestination(refusal)
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    if not addresses:
        raise UnsafeDestination("The host has no address.")
    return addresses


def webhook_url_check(url: str) -> None:
    """Raises UnsafeDestination, with a message for the integrator, unless `url` is an http(s)
    URL whose host resolves only to addresses webhooks may reach."""
    if not url or any(char.isspace() for char in url):
        raise UnsafeDestination("Enter a URL without spaces.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeDestination(f"Not a valid URL: {error}.") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeDestination("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeDestination("The URL has no host.")
    try:
        destination_resolve(parts.hostname, port or DEFAULT_PORTS[parts.scheme])
    except (socket.gaierror, UnicodeError):
        raise UnsafeDestination(f"The host {parts.hostname!r} does not resolve.") from None


def _guarded_connect(connection: HTTPConnection) -> socket.socket:
    """urllib3's `_new_conn`, connecting only to vetted addresses of the host."""
    host = connection._dns_host
    try:
        addresses = destination_resolve(host, connection.port or 80)
    except socket.gaierror as error:
        raise NameResolutionError(connection.host, connection, error) from error
    last_error: OSError | None = None
    for _family, sockaddr in addresses:
        try:
            return urllib3_connection.create_connection(
                (str(sockaddr[0]), int(sockaddr[1])),
                connection.timeout,
                source_address=connection.source_address,
                socket_options=connection.socket_options,
            )
        except TimeoutError as error:
            raise ConnectTimeoutError(
                connection, f"Connection to {connection.host} timed out."
            ) from error
        except OSError as error:
            last_error = error
    raise NewConnectionError(
        connection, f"Failed to establish a new connection: {last_error}"
    ) from last_error


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_connect(self)


class _GuardedHTTPSConnection(HTTPSConnection):
    # TLS still verifies the certificate against the host name: only the socket is ours.
    def _new_conn(self) -> socket.socket:
        return _guarded_connect(self)


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only where `address_refusal` allows."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # A fresh dict: the default one is shared by every PoolManager in the process.
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }
