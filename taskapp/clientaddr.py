"""The client's address: one canonical form for every consumer, and the network limits count.

``REMOTE_ADDR`` is the peer, or with TRUSTED_PROXIES the X-Forwarded-For entry a proxy of ours
appended (ProxyFix). Either may be anything a misconfigured proxy passes on, so it is
canonicalised once, in a WSGI middleware under ProxyFix, before any consumer (limits, the
session's stored address, logs, metrics) reads it: a valid address in its one spelling, else
no address at all.
"""

import ipaddress

from flask import request

# The longest text worth parsing: a full IPv6 address with an embedded IPv4 (45 characters),
# brackets and a zone. Anything longer is garbage, refused before parsing.
MAX_ADDRESS_CHARS = 64
# An IPv6 client is given a /64 (RFC 6177): it owns every address in it, so the limits count
# the network, not the address.
IPV6_CLIENT_PREFIX = 64
UNKNOWN = "unknown"


def canonical_address(text: str | None) -> str | None:
    """``text`` as one spelling of an IP address (IPv4-mapped IPv6 unwrapped, IPv6 compressed
    and lower-cased, no zone), or None when it is not an address."""
    if not text or len(text) > MAX_ADDRESS_CHARS:
        return None
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.partition("%")[0]  # a zone (fe80::1%eth0) names the proxy's link, not the client
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def address_network(address: str | None) -> str:
    """The rate-limit key of a canonical address: itself for IPv4, its /64 for IPv6."""
    if address is None:
        # Every client whose address is unknown shares one count: stricter, never looser.
        return UNKNOWN
    if ":" in address:
        network = ipaddress.IPv6Network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False)
        return str(network)
    return address


def client_network() -> str:
    """Flask-Limiter's key function for per-address limits: the requester's network."""
    return address_network(request.remote_addr)


def canonical_client_address(wsgi_app):
    """WSGI middleware: ``REMOTE_ADDR`` canonical, or removed when it is not an address."""

    def middleware(environ, start_response):
        raw = environ.get("REMOTE_ADDR")
        address = canonical_address(raw) if isinstance(raw, str) else None
        if address is None:
            environ.pop("REMOTE_ADDR", None)
        else:
            environ["REMOTE_ADDR"] = address
        return wsgi_app(environ, start_response)

    return middleware
