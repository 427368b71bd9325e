"""SSRF guard: which IP addresses the fetcher may connect to.

Links come from strangers, so a URL (or a redirect) must not make a worker
talk to its own loopback, the cloud metadata service at 169.254.169.254 or the
private network it runs in. The check runs where the socket is made (see
`client.py`): the host name is resolved once, every address it resolves to
must be public, the socket connects to one of exactly those addresses, and
the peer address of the connected socket is checked again. A DNS answer that
changes between a check and the connect (rebinding) therefore cannot slip
through: there is no second lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(Exception):
    """The host resolves to (or the socket reached) an address the guard refuses.

    Deliberately not an OSError: urllib3 and requests let it through untouched,
    so it is never retried or mistaken for a network failure.
    """


class DnsFailure(Exception):
    """The host name did not resolve (not an OSError, for the same reason)."""


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 address itself
            return address_problem(ip.ipv4_mapped)
        embedded = [ip.sixtofour]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        for inner in embedded:
            if inner is not None and (problem := address_problem(inner)):
                return f"{problem} (embedded in {ip})"
    for name in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site_local"
    if not ip.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT
        return "not_global"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses may be connected to: public ones, plus any allow-listed networks."""

    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Parse once, fail early on a typo in a CIDR block.
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)
        object.__setattr__(self, "_networks", networks)

    def problem(self, address: str) -> str | None:
        """Why connecting to `address` (an IP literal, maybe with %scope) is refused, or None."""
        if self.allow_private:
            return None
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))
        except ValueError:
            return f"not an IP address: {address!r}"
        if any(ip in net for net in self._networks):  # type: ignore[attr-defined]
            return None
        problem = address_problem(ip)
        return f"{ip} is {problem}" if problem else None

    def check_literal(self, host: str) -> None:
        """Refuse a URL whose host is itself a non-public IP literal, before any work."""
        try:
            ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return  # a name: checked when it is resolved
        if problem := self.problem(host):
            raise BlockedAddress(problem)


def resolve(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) pairs for `host`, in resolver order; raises DnsFailure."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DnsFailure(f"{host}: {exc}") from None
    seen: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        pair = (int(family), str(sockaddr[0]))
        if pair not in seen:
            seen.append(pair)
    if not seen:
        raise DnsFailure(f"{host}: no addresses")
    return seen


def checked_addresses(policy: AddressPolicy, host: str, port: int) -> list[tuple[int, str]]:
    """Resolve `host`; refuse it if ANY address is non-public (a mixed answer is an attack)."""
    addresses = resolve(host, port)
    for _family, address in addresses:
        if problem := policy.problem(address):
            raise BlockedAddress(f"{host} resolves to {problem}")
    return addresses

