"""The webhook rules: the derived secret, the signature a receiver checks, the retry schedule,
what a webhook URI may be and which addresses a delivery may reach."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import uuid
from datetime import timedelta

import pytest

from keyplane.domain.networks import Networks
from keyplane.domain.webhooks import (
    SECRET_PREFIX,
    backoff,
    carried_ipv4,
    is_public,
    permitted,
    signature,
    signing_secret,
    verify_signature,
    webhook_uri_problem,
)

CUSTOMER = uuid.UUID("dc60d72c-dd30-409d-9509-1c084f887f70")
SECRET = "whsec_" + "ab" * 32
BODY = b'{"type": "accesskey_created"}'
EVENT = "5f0c3c0e-8f0e-4a4c-9a57-4d3f1c2b9e11"


def test_the_secret_is_an_hmac_of_the_customer_and_generation() -> None:
    secret = signing_secret("server key", CUSTOMER, 3)
    material = f"keyplane-webhook-secret:{CUSTOMER}:3".encode()
    assert secret == "whsec_" + hmac.new(b"server key", material, hashlib.sha256).hexdigest()
    assert SECRET_PREFIX == "whsec_"
    assert len(secret) == len("whsec_") + 64
    assert signing_secret("server key", CUSTOMER, 4) != secret
    assert signing_secret("other key", CUSTOMER, 3) != secret
    assert signing_secret("server key", uuid.uuid4(), 3) != secret


def _mac(signed: bytes) -> str:
    return hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()


def test_the_signature_header() -> None:
    v1 = _mac(b"1700000000." + BODY)
    v2 = _mac(b"1700000000." + EVENT.encode() + b"." + BODY)
    assert signature(SECRET, 1_700_000_000, EVENT, BODY) == f"t=1700000000,v1={v1},v2={v2}"


def test_v2_signs_the_event_id_and_v1_stays_as_it_was() -> None:
    """v1 is what receivers written before v2 check; v2 changes with the event id."""
    first = dict(item.split("=", 1) for item in signature(SECRET, 1000, EVENT, BODY).split(","))
    other = dict(
        item.split("=", 1) for item in signature(SECRET, 1000, str(uuid.uuid4()), BODY).split(",")
    )
    assert first["v1"] == other["v1"] == _mac(b"1000." + BODY)
    assert first["v2"] != other["v2"]


def test_a_genuine_delivery_verifies() -> None:
    header = signature(SECRET, 1000, EVENT, BODY)
    assert verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300)
    assert verify_signature(SECRET, header, EVENT, BODY, now=1300, tolerance=300)  # at the bound
    assert verify_signature(SECRET, header, EVENT, BODY, now=700, tolerance=300)


def test_a_delivery_replayed_under_a_fresh_event_id_does_not_verify() -> None:
    """Within the tolerance, a captured delivery sent again with a new id is refused."""
    header = signature(SECRET, 1000, EVENT, BODY)
    fresh = str(uuid.uuid4())
    assert not verify_signature(SECRET, header, fresh, BODY, now=1010, tolerance=300)
    assert not verify_signature(SECRET, header, "", BODY, now=1010, tolerance=300)


def test_v1_alone_does_not_verify() -> None:
    """A header stripped of v2 (only the older, id-free v1 left) is refused."""
    header = signature(SECRET, 1000, EVENT, BODY).rsplit(",v2=", 1)[0]
    assert not verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300)


@pytest.mark.parametrize(
    ("header", "body", "now"),
    [
        (None, BODY + b" ", 1000),  # the body changed
        (None, BODY, 1301),  # too late: a replay
        (None, BODY, 699),  # from the future
        ("v2=" + "0" * 64, BODY, 1000),  # no timestamp
        ("t=soon,v2=" + "0" * 64, BODY, 1000),  # not a number
        ("t=1000", BODY, 1000),  # no signature
        ("t=1000,v2=" + "0" * 64, BODY, 1000),  # a wrong signature
        ("", BODY, 1000),
    ],
    ids=["body", "late", "early", "no-t", "bad-t", "no-v2", "wrong-v2", "empty"],
)
def test_anything_else_does_not(header: str | None, body: bytes, now: int) -> None:
    header = signature(SECRET, 1000, EVENT, BODY) if header is None else header
    assert verify_signature(SECRET, header, EVENT, body, now=now, tolerance=300) is False


def test_another_secret_does_not_verify() -> None:
    header = signature(SECRET, 1000, EVENT, BODY)
    other = "whsec_" + "cd" * 32
    assert verify_signature(other, header, EVENT, BODY, now=1000, tolerance=300) is False


def test_a_value_holding_an_equals_sign_is_refused_not_an_error() -> None:
    assert verify_signature(SECRET, "t=1000,v2=a=b", EVENT, BODY, now=1000, tolerance=300) is False


@pytest.mark.parametrize("later", ["v2=a=b", "t=1000=1"])
def test_the_last_item_of_a_name_is_the_one_checked(later: str) -> None:
    """A genuine signature followed by another ``v2`` or ``t`` is judged by the later one."""
    header = signature(SECRET, 1000, EVENT, BODY) + "," + later
    assert verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300) is False


def test_items_without_a_value_are_ignored() -> None:
    header = "junk," + signature(SECRET, 1000, EVENT, BODY) + ",v0"
    assert verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300)


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(0, 10.0), (1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 100.0), (30, 100.0)],
)
def test_backoff_doubles_up_to_the_ceiling(attempts: int, seconds: float) -> None:
    assert backoff(attempts, base=10.0, ceiling=100.0) == timedelta(seconds=seconds)


# ------------------------------------------------------------------ destinations

NOTHING_ALLOWED: Networks = ()


@pytest.mark.parametrize(
    "text",
    [
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a00:1",  # IPv4-compatible 10.0.0.1
        "::808:808",  # IPv4-compatible, even of a public address: never routed
        "64:ff9b::7f00:1",  # NAT64 (well-known prefix) of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254, the cloud metadata service
        "64:ff9b:1::7f00:1",  # NAT64, local use (RFC 8215)
        "64:ff9b:1:abcd::808:808",  # local-use NAT64: never public, whatever it carries
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:808:808::1",  # 6to4 (deprecated relays) even of a public address
        "::ffff:0:7f00:1",  # SIIT (IPv4-translated) 127.0.0.1
        "::ffff:0:a00:1",  # SIIT 10.0.0.1
        "::ffff:7f00:1",  # IPv4-mapped 127.0.0.1
        "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, client 8.8.8.8
        "fec0::1",  # site-local (deprecated)
        "fed0::1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff0e::1",  # global-scope multicast
        "2001:db8::1",  # documentation
        "100::1",  # discard-only
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # shared (carrier-grade NAT)
        "0.0.0.0",
        "224.0.0.1",
        "233.252.0.1",  # multicast that Python's tables call global
        "255.255.255.255",
        "192.0.2.1",  # documentation
    ],
)
def test_private_and_reserved_addresses_are_refused(text: str) -> None:
    address = ipaddress.ip_address(text)
    assert not is_public(address)
    assert not permitted(address, NOTHING_ALLOWED)


@pytest.mark.parametrize(
    "text",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped of a public address: a dual-stack socket's form
        "64:ff9b::808:808",  # NAT64 of a public address: what DNS64 answers
    ],
)
def test_public_addresses_still_pass(text: str) -> None:
    address = ipaddress.ip_address(text)
    assert is_public(address)
    assert permitted(address, NOTHING_ALLOWED)


@pytest.mark.parametrize(
    ("text", "carried"),
    [
        ("::ffff:7f00:1", "127.0.0.1"),
        ("::7f00:1", "127.0.0.1"),
        ("::ffff:0:7f00:1", "127.0.0.1"),
        ("64:ff9b::c000:221", "192.0.2.33"),
        ("64:ff9b:1::c000:221", "192.0.2.33"),
        ("2002:c000:221::1", "192.0.2.33"),
        ("2002:c000:221:ffff:ffff:ffff:ffff:ffff", "192.0.2.33"),
        # RFC 4380's example: server 65.54.227.120, client 192.0.2.45 (inverted).
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
        ("2606:4700:4700::1111", None),
        ("fe80::1", None),
    ],
)
def test_the_ipv4_address_each_form_carries(text: str, carried: str | None) -> None:
    address = ipaddress.IPv6Address(text)
    expected = None if carried is None else ipaddress.IPv4Address(carried)
    assert carried_ipv4(address) == expected


def test_the_allowlist_lets_an_operator_reach_its_own_networks() -> None:
    allowed: Networks = (ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00::/8"))
    for text in ("10.20.0.5", "::ffff:10.20.0.5", "fd00::5"):
        assert permitted(ipaddress.ip_address(text), allowed), text
    # Carrying an allowed address through a translator or a relay is not reaching it.
    for text in ("10.21.0.5", "64:ff9b::a14:5", "::a14:5", "::ffff:0:a14:5", "2002:a14:5::1"):
        assert not permitted(ipaddress.ip_address(text), allowed), text


def test_an_allowlisted_ipv6_form_is_allowed_as_written() -> None:
    allowed: Networks = (
        ipaddress.ip_network("64:ff9b::a14:0/112"),
        ipaddress.ip_network("64:ff9b:1::/48"),
    )
    assert permitted(ipaddress.ip_address("64:ff9b::a14:5"), allowed)
    assert permitted(ipaddress.ip_address("64:ff9b:1::a00:1"), allowed)
    assert not permitted(ipaddress.ip_address("64:ff9b::a15:5"), allowed)


# ------------------------------------------------------------------ the webhook URI


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/hook",
        "http://example.com:8080/keyplane?x=1#frag",
        "https://hooks.example.com./keyplane",  # a fully qualified name
        "https://bücher.example/hook",  # an internationalised name
        "https://a_b.example.com/",
        "http://example.com:/x",  # an empty port is the default one
        "http://example.com:1/",
        "http://example.com:65535/",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]:8443/hook",
        "https://[64:ff9b::808:808]/hook",
        "https://example.com/a%20b%0D%0A",  # percent-encoded is fine: it stays encoded
        "HTTPS://Example.COM/Hook",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_good_webhook_uris(uri: str) -> None:
    assert webhook_uri_problem(uri, NOTHING_ALLOWED) == ""


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("http://[::1", "is not a valid URL"),
        ("http://[bad]/", "is not a valid URL"),
        ("http://[1.2.3.4]/", "is not a valid URL"),
        ("http://[v1.abc]/", "has a host in brackets that is not an IPv6 address"),
        ("http://[fe80::1%25eth0]/", "has an IP address written in a form URLs do not use"),
        ("http://example.com:99999/", "has a port that is not a number from 1 to 65535"),
        ("http://example.com:65536/", "has a port that is not a number from 1 to 65535"),
        ("http://example.com:0/", "has a port that is not a number from 1 to 65535"),
        ("http://example.com:http/", "has a port that is not a number from 1 to 65535"),
        ("http://example.com:+80/", "has a port that is not a number from 1 to 65535"),
        ("http://example.com:\u0668\u0660/", "has a port that is not a number from 1 to 65535"),
        ("http://[2606:4700:4700::1111]:99999/", "has a port that is not a number"),
        ("http://example.com/\r\nX-Injected: 1", "must not contain spaces or control characters"),
        ("http://example.com/\r\n", "must not contain spaces or control characters"),
        ("http://example.com/a b", "must not contain spaces or control characters"),
        (" http://example.com/", "must not contain spaces or control characters"),
        ("http://example.com/\t", "must not contain spaces or control characters"),
        ("http://example.com/\x00", "must not contain spaces or control characters"),
        ("http://example.com/\x7f", "must not contain spaces or control characters"),
        ("http://example.com/\u0085", "must not contain spaces or control characters"),
        ("http://example.com/\u00a0", "must not contain spaces or control characters"),
        ("http://example.com/\u200b", "must not contain spaces or control characters"),
        ("http://example.com/\u2028", "must not contain spaces or control characters"),
        ("http://exa\u00a0mple.com/", "must not contain spaces or control characters"),
        ("ftp://example.com/x", "must be an absolute http:// or https:// URL"),
        ("/relative", "must be an absolute http:// or https:// URL"),
        ("http:///path", "must be an absolute http:// or https:// URL"),
        ("http://user:pw@example.com/", "must not carry a user name or password"),
        ("http://exa%2ecom/", "has a host that is not a valid domain name"),
        ("http://a..example.com/", "has a host that is not a valid domain name"),
        ("http://-a.example.com/", "has a host that is not a valid domain name"),
        ("http://" + "a" * 64 + ".com/", "has a host that is not a valid domain name"),
        ("http://2130706433/", "has a host that is neither a domain name nor a dotted IPv4"),
        ("http://0x7f.1/", "has a host that is neither a domain name nor a dotted IPv4"),
        ("http://127.1/", "has a host that is neither a domain name nor a dotted IPv4"),
        ("http://1.2.3.4.5/", "has a host that is neither a domain name nor a dotted IPv4"),
        ("http://10.1.2.3/hook", "points to a private, loopback or reserved address"),
        ("http://[::1]/hook", "points to a private, loopback or reserved address"),
        ("http://[::7f00:1]/hook", "points to a private, loopback or reserved address"),
        ("http://[64:ff9b::7f00:1]/", "points to a private, loopback or reserved address"),
        ("http://[2002:7f00:1::1]/", "points to a private, loopback or reserved address"),
        ("http://[::ffff:0:7f00:1]/", "points to a private, loopback or reserved address"),
        ("http://[fec0::1]/", "points to a private, loopback or reserved address"),
        ("https://example.com/" + "a" * 2030, "is longer than 2048 characters"),
    ],
)
def test_bad_webhook_uris_say_what_is_wrong(uri: str, problem: str) -> None:
    found = webhook_uri_problem(uri, NOTHING_ALLOWED)
    assert found.startswith(problem)
    assert "example" not in found  # never repeats the URI
    assert "\r" not in found


def test_the_allowlist_admits_a_literal_address() -> None:
    allowed: Networks = (ipaddress.ip_network("127.0.0.0/8"),)
    assert webhook_uri_problem("http://127.0.0.1:8080/hook", allowed) == ""
    assert webhook_uri_problem("http://[::ffff:127.0.0.1]:8080/hook", allowed) == ""
    assert webhook_uri_problem("http://[::7f00:1]:8080/hook", allowed).startswith("points to")
