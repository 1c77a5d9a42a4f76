"""The IP allowlist of an access key: the networks its requests may come from.

A key without an allowlist may be used from anywhere. The address compared
is the client's as keyplane sees it: the peer, or the client named in
``X-Forwarded-For`` by a trusted proxy (``KEYPLANE_TRUSTED_PROXIES``). An
unknown or unparsable address matches nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Networks = tuple[Network, ...]
MAX_NETWORKS = 50


def parse_networks(raw: object) -> Networks | None:
    """``None`` (anywhere) or a non-empty list of CIDRs; ``ValueError`` otherwise."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or len(raw) > MAX_NETWORKS:
        raise ValueError(f"give a list of 1 to {MAX_NETWORKS} CIDRs, such as 203.0.113.0/24")
    networks: list[Network] = []
    for item in raw:
        if not isinstance(item, str):
            raise ValueError("each network is a CIDR string, such as 203.0.113.0/24")
        try:
            # strict: 203.0.113.7/24 is a typo or a misunderstanding, not a network.
            networks.append(ipaddress.ip_network(item.strip(), strict=True))
        except ValueError:
            raise ValueError(
                "each network is a CIDR with no host bits set, such as 203.0.113.0/24"
            ) from None
    return tuple(networks)


def _address(client: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:203.0.113.7 is 203.0.113.7
    return address


def allows(networks: Networks, client: str) -> bool:
    address = _address(client)
    return address is not None and any(address in network for network in networks)


def covers(holder: Networks | None, wanted: Networks | None) -> bool:
    """Every address ``wanted`` allows, ``holder`` allows too (``None``: anywhere)."""
    if holder is None:
        return True
    if wanted is None:
        return False
    return all(
        any(
            mine.version == network.version and network.subnet_of(mine)  # type: ignore[arg-type]
            for mine in holder
        )
        for network in wanted
    )


def networks_to_json(networks: Networks | None) -> list[str] | None:
    return None if networks is None else [str(network) for network in networks]


def networks_from_json(stored: Iterable[str] | None) -> Networks | None:
    return None if stored is None else tuple(ipaddress.ip_network(item) for item in stored)
