"""The client address behind trusted proxies, and the bucket the limiter counts it in."""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp.test_utils import make_mocked_request

from dockmesh.server.clients import bucket, client_address, parse_ip, resolve
from dockmesh.server.config import ConfigError, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 2001:db8:ffff::/48", "--trusted-proxies")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:5555", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_parse_ip(text: str, address: str) -> None:
    assert parse_ip(text) == ipaddress.ip_address(address)


@pytest.mark.parametrize("text", ["", "unknown", "_hidden", "1", "[2001:db8::1", "300.1.1.1", "a.b.c.d"])
def test_parse_ip_refuses_garbage(text: str) -> None:
    assert parse_ip(text) is None


def test_ipv6_is_bucketed_by_its_64() -> None:
    a = bucket(parse_ip("2001:db8:1:2:aaaa::1"))
    b = bucket(parse_ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
    assert a == b == "2001:db8:1:2::/64"
    assert bucket(parse_ip("2001:db8:1:3::1")) != a


def test_ipv4_is_bucketed_by_address_and_mapped_ipv6_counts_as_ipv4() -> None:
    assert bucket(parse_ip("203.0.113.7")) == "203.0.113.7"
    assert bucket(parse_ip("203.0.113.8")) == "203.0.113.8"
    assert bucket(parse_ip("::ffff:203.0.113.7")) == "203.0.113.7"
    assert bucket(None) == "?"


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert resolve("198.51.100.9", ["203.0.113.7"], PROXIES) == parse_ip("198.51.100.9")
    assert resolve("198.51.100.9", ["203.0.113.7"], ()) == parse_ip("198.51.100.9")


def test_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    assert resolve("10.1.2.3", ["203.0.113.7"], PROXIES) == parse_ip("203.0.113.7")
    assert resolve("::ffff:10.1.2.3", ["2001:db8:1::5"], PROXIES) == parse_ip("2001:db8:1::5")


def test_rightmost_untrusted_address_wins_over_what_the_client_wrote() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1" itself; two of our proxies appended the real hops.
    header = "1.1.1.1, 203.0.113.7, 10.9.9.9"
    assert resolve("10.0.0.1", [header], PROXIES) == parse_ip("203.0.113.7")
    # Several headers are one list, in order.
    assert resolve("10.0.0.1", ["1.1.1.1", "203.0.113.7, 10.9.9.9"], PROXIES) == parse_ip("203.0.113.7")


def test_a_chain_of_only_trusted_hops_is_the_leftmost_hop() -> None:
    assert resolve("10.0.0.1", ["10.0.0.2, 10.0.0.3"], PROXIES) == parse_ip("10.0.0.2")
    assert resolve("10.0.0.1", [], PROXIES) == parse_ip("10.0.0.1")


def test_garbage_in_the_chain_stops_at_the_last_trusted_hop() -> None:
    assert resolve("10.0.0.1", ["203.0.113.7, unknown"], PROXIES) == parse_ip("10.0.0.1")


def test_client_address_reads_the_request_once() -> None:
    request = make_mocked_request(
        "GET", "/", headers={"X-Forwarded-For": "203.0.113.7"}, transport=_transport("10.0.0.1")
    )
    assert client_address(request, PROXIES) == parse_ip("203.0.113.7")
    assert client_address(request, ()) == parse_ip("203.0.113.7")  # cached for the access log
    other = make_mocked_request(
        "GET", "/", headers={"X-Forwarded-For": "203.0.113.7"}, transport=_transport("10.0.0.1")
    )
    assert client_address(other, ()) == parse_ip("10.0.0.1")


def test_trusted_proxies_config() -> None:
    assert parse_networks("", "x") == ()
    assert parse_networks("10.0.0.1/8", "x") == (ipaddress.ip_network("10.0.0.0/8"),)
    assert parse_networks("::1", "x") == (ipaddress.ip_network("::1/128"),)
    with pytest.raises(ConfigError, match="--trusted-proxies"):
        parse_networks("10.0.0.0/8, nonsense", "--trusted-proxies")


def _transport(peer: str) -> object:
    class Transport:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return (peer, 4444) if name == "peername" else default

    return Transport()
