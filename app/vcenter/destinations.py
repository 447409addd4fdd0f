"""Where webhooks may go: the answer to server-side request forgery through fault subscriptions.

A tenant names a URL and the controller POSTs to it from inside the operator's network, so the
URL must not reach what only the controller can reach: its own loopback services, the cloud's
link-local metadata service, private networks. A destination passes when its host name is
listed in the allow-list, or when the address it resolves to is in a listed network, or is a
public (globally routable) address and ``public`` is listed (the default). The check is made on
the resolved addresses at every delivery, and the connection goes to the address checked
(``exchange(..., address=...)``): a name that resolves elsewhere a second later (DNS
rebinding) cannot move the POST.

URLs with user information (``http://user@host/``) are refused: the user part only serves to
make a URL look like another host's.
"""

import ipaddress
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses the name resolves to, in the resolver's order
Resolver = Callable[[str, int], list[str]]

PUBLIC = "public"
DEFAULT_ALLOW = (PUBLIC,)


class DestinationRefused(ValueError):
    """The URL is malformed or leads where webhooks may not go; the message says why."""


class UnresolvedHost(DestinationRefused):
    """The name did not resolve (now): worth trying again later."""


@dataclass(frozen=True)
class Target:
    """A checked URL: the host and port to connect to (``host`` still names the TLS peer and
    the Host header)."""

    url: str
    host: str
    port: int


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise UnresolvedHost(f"cannot resolve {host!r}: {err}") from None
    return [str(info[4][0]) for info in infos]


def parse_target(url: str) -> Target:
    """Syntax only: http(s), a host, no user information, a valid port."""
    if not isinstance(url, str) or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise DestinationRefused("expected http://HOST:PORT/PATH without spaces or controls")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise DestinationRefused(f"expected http://HOST:PORT/PATH: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("expected http://HOST:PORT/PATH or https://...")
    if "@" in parts.netloc:
        raise DestinationRefused("user information (user@host) is not accepted in webhook URLs")
    if not parts.hostname:
        raise DestinationRefused("expected http://HOST:PORT/PATH: the host is missing")
    if port == 0:
        raise DestinationRefused("port 0 is not a destination")
    return Target(url, parts.hostname, port or (443 if parts.scheme == "https" else 80))


class DestinationPolicy:
    def __init__(self, allow: Iterable[str] = DEFAULT_ALLOW, resolver: Resolver = system_resolver):
        """``allow``: ``public``, networks or addresses (``10.1.0.0/16``, ``127.0.0.1``) and
        host names (``doctor.example.com``, ``*.example.com``); ValueError names a bad entry."""
        self.public = False
        self.networks: list[Network] = []
        self.names: list[str] = []
        for entry in allow:
            value = parse_allow_entry(entry)
            if value is None:
                self.public = True
            elif isinstance(value, str):
                self.names.append(value)
            else:
                self.networks.append(value)
        self._resolve = resolver

    def check_url(self, url: str) -> Target:
        """What can be said without the network (at subscription time): the syntax (a path
        too), and a literal address or a loopback name refused outright."""
        target = parse_target(url)
        if not urllib.parse.urlsplit(url).path.startswith("/"):
            raise DestinationRefused("expected http://HOST:PORT/PATH: the path is missing")
        if self._name_allowed(target.host):
            return target
        literal = _literal(target.host)
        if literal is not None:
            self._check_address(literal)
        elif _loopback_name(target.host):
            raise DestinationRefused(
                f"{target.host} is a loopback name; not an allowed destination"
            )
        return target

    def resolve(self, url: str) -> tuple[Target, str]:
        """The target and the one address to connect to (the first allowed one the name
        resolves to). DestinationRefused when none is allowed."""
        target = self.check_url(url)
        literal = _literal(target.host)
        if literal is not None:
            return target, str(literal)
        addresses = self._resolve(target.host, target.port)
        if self._name_allowed(target.host):
            if not addresses:
                raise DestinationRefused(f"{target.host} resolves to no address")
            return target, addresses[0]
        problems = []
        for text in addresses:
            try:
                self._check_address(ipaddress.ip_address(text.split("%")[0]))
            except (DestinationRefused, ValueError) as err:
                problems.append(str(err))
                continue
            return target, text
        raise DestinationRefused(
            f"{target.host} resolves to no allowed address ({'; '.join(problems) or 'none'})"
        )

    def _name_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(
            host.endswith(name[1:]) if name.startswith("*.") else host == name
            for name in self.names
        )

    def _check_address(self, address: Address) -> None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(address in network for network in self.networks):
            return
        if address.is_global and not address.is_multicast:
            if self.public:
                return
            raise DestinationRefused(f"{address} is not in the webhook allow-list")
        raise DestinationRefused(f"{address} is {_kind(address)}; not an allowed destination")


def parse_allow_entry(entry) -> Network | str | None:
    """None for ``public``, a network, or a host name (lower case, ``*.`` kept)."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"expected public, a network (CIDR), an address or a host name: {entry!r}")
    entry = entry.strip().lower()
    if entry == PUBLIC:
        return None
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        pass
    name = entry[2:] if entry.startswith("*.") else entry
    labels = name.rstrip(".").split(".")
    if not all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels):
        raise ValueError(
            f"expected public, a network (CIDR), an address or a host name, got {entry!r}"
        )
    return entry.rstrip(".")


def _literal(host: str) -> Address | None:
    """An address written as the host, in any form the C resolver takes for one (127.1,
    2130706433, 0x7f.0.0.1 are all 127.0.0.1)."""
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host.lower()) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _loopback_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")  # RFC 6761


def _kind(address: Address) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    return "a reserved address"
