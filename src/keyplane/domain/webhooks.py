"""Webhook rules: the per-customer signing secret, the signature, the retry schedule,
what a webhook URI may be, and which addresses a delivery may reach.

The signing secret is never stored: it is derived from the server's webhook
key and the customer's id and secret generation (a counter, the only thing
kept), so the database holds nothing that could sign a delivery.

Signature header (documented in docs/webhooks.md)::

    Keyplane-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>,
                        v2=<hex HMAC-SHA256(secret, "<t>.<event id>." + body)>

``v2`` binds the delivery to its ``Keyplane-Event-Id``, so a captured delivery
replayed with a fresh id fails it; ``v1`` is still sent for receivers written
against it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from keyplane.domain.networks import Networks

SIGNATURE_HEADER = "Keyplane-Signature"
EVENT_ID_HEADER = "Keyplane-Event-Id"  # the idempotency key: the same on every retry
IDEMPOTENCY_HEADER = "Idempotency-Key"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
METHODS = ("POST", "PUT")
MAX_URI = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def signing_secret(server_key: str, customer_id: uuid.UUID, generation: int) -> str:
    """The customer's current secret: ``whsec_`` and 64 hex characters."""
    material = f"keyplane-webhook-secret:{customer_id}:{generation}".encode()
    return SECRET_PREFIX + hmac.new(server_key.encode(), material, hashlib.sha256).hexdigest()


def _mac(secret: str, signed: bytes) -> str:
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, event_id: str, body: bytes) -> str:
    """The value of the ``Keyplane-Signature`` header of the delivery of event ``event_id``."""
    v1 = _mac(secret, f"{timestamp}.".encode() + body)
    v2 = _mac(secret, f"{timestamp}.{event_id}.".encode() + body)
    return f"t={timestamp},v1={v1},v2={v2}"


def verify_signature(
    secret: str, header: str, event_id: str, body: bytes, now: int, tolerance: int
) -> bool:
    """What a receiver does (the documented snippet, in Python): ``v2`` over time, id and body."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, f"{timestamp}.{event_id}.".encode() + body)
    return hmac.compare_digest(expected, parts.get("v2", ""))


def backoff(attempts: int, base: float, ceiling: float) -> timedelta:
    """Exponential: base, 2·base, 4·base, … capped at ``ceiling`` seconds."""
    return timedelta(seconds=min(ceiling, base * (2 ** max(0, attempts - 1))))


# ------------------------------------------------------------------ destinations

# IPv6 forms that carry an IPv4 address (RFC 4291, 6052, 6145, 3056, 4380).
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # IPv4-mapped
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # IPv4-compatible (deprecated)
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # IPv4-translated (SIIT)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # NAT64, the well-known prefix
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # NAT64, local use (RFC 8215)
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # the IPv4 address in bits 16-47
_TEREDO = ipaddress.IPv6Network("2001::/32")  # the client's, inverted, in the last 32 bits
_LAST_32 = (_MAPPED, _COMPATIBLE, _SIIT, _NAT64, _LOCAL_NAT64)
# Reaching one of these is reaching the IPv4 address it carries (a dual-stack socket,
# a DNS64/NAT64 translator): the IPv4 address is the destination, and its verdict is theirs.
_TRANSLATED = (_MAPPED, _NAT64)
# Everything else public is inside global unicast (2000::/3): this leaves out the
# IPv4-compatible and SIIT forms, local-use NAT64 (RFC 8215) and the deprecated
# site-local fec0::/10, all of which Python's ``is_global`` calls global.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# Relays of deprecated transition mechanisms (RFC 7526; Teredo): never a destination.
_RELAYED = (_SIX_TO_FOUR, _TEREDO)


def carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, if it is one of the forms that carry one.

    Local-use NAT64 is read with the /96 prefix; it is never public either way.
    """
    value = int(address)
    if any(address in network for network in _LAST_32):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    if address in _TEREDO:
        return ipaddress.IPv4Address(~value & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """Globally routable unicast, and so is every IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not address.is_multicast
    carried = carried_ipv4(address)
    if carried is not None and not is_public(carried):
        return False
    if any(address in network for network in _TRANSLATED):
        return True
    return (
        address in _GLOBAL_UNICAST
        and not any(address in network for network in _RELAYED)
        and address.is_global
    )


def permitted(address: Address, allowed: Networks) -> bool:
    """A delivery may go to ``address``: inside the operator's allowlist, or public.

    The allowlist (``KEYPLANE_WEBHOOK_ALLOWED_NETWORKS``) matches the address as
    resolved; an IPv4-mapped address is its IPv4 address (``10.20.0.0/16`` allows
    ``::ffff:10.20.0.5``: the same socket, the same host). Any other form that
    carries an allowed IPv4 address goes through a translator or a relay, which is
    not the allowed host: it must be allowlisted as written.
    """
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if any(address in network or (mapped is not None and mapped in network) for network in allowed):
        return True
    return is_public(address)


# ------------------------------------------------------------------ the webhook URI

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG URL: a host whose last label is a number is an IPv4 address (0x7f.1, 2130706433),
# which getaddrinfo would read as one too; only the dotted-quad form is taken.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{1,5}")


def _name_problem(host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "has a host that is not a valid domain name"
    labels = ascii_host.lower().removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "has a host that is not a valid domain name"
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return "has a host that is neither a domain name nor a dotted IPv4 address"
    return ""


def _port_problem(netloc: str) -> str:
    host_port = netloc.rpartition("@")[2]
    port = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    if ":" not in port:
        return ""
    text = port.rpartition(":")[2]
    if text == "":
        return ""  # "host:" is the default port, as URLs allow
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        return "has a port that is not a number from 1 to 65535"
    return ""


def webhook_uri_problem(uri: str, allowed: Networks) -> str:
    """What is wrong with a webhook URI on its face ("" if nothing); DNS is checked on use.

    The one check of a URI, when a customer sets it (API, admin page, command line)
    and again before each delivery. The text completes "'webhook_uri' …" and never
    repeats the URI.
    """
    if len(uri) > MAX_URI:
        return f"is longer than {MAX_URI} characters"
    if not all(char.isprintable() and not char.isspace() for char in uri):
        return "must not contain spaces or control characters (percent-encode them)"
    try:
        parts = urlsplit(uri)
        hostname = parts.hostname
        has_userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        return "is not a valid URL (look at the host, and the brackets of an IPv6 address)"
    if parts.scheme not in ("http", "https") or not hostname:
        return "must be an absolute http:// or https:// URL"
    if has_userinfo:
        return "must not carry a user name or password"
    problem = _port_problem(parts.netloc)
    if problem:
        return problem
    bracketed = "[" in parts.netloc
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        if bracketed:
            return "has a host in brackets that is not an IPv6 address"
        return _name_problem(hostname)
    if bracketed != isinstance(address, ipaddress.IPv6Address) or (
        isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None
    ):
        return "has an IP address written in a form URLs do not use"
    if not permitted(address, allowed):
        return "points to a private, loopback or reserved address"
    return ""
