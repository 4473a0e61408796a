"""What `imgret serve` decides before it starts: which addresses are loopback, the socket."""

from __future__ import annotations

import socket

import pytest

from imgret.errors import BadInputError
from imgret.serve.run import is_loopback, listen


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("192.168.1.20", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host, local):
    assert is_loopback(host) is local


def test_the_port_is_bound_before_anything_loads_and_a_taken_one_is_named():
    with listen("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        with pytest.raises(BadInputError, match=f"127.0.0.1:{port}.*pass --port"):
            listen("127.0.0.1", port)


def test_an_address_that_is_not_this_machines_is_named():
    with pytest.raises(BadInputError, match="cannot serve on 'no-such-host.invalid'"):
        listen("no-such-host.invalid", 0)


def test_ipv6_loopback_in_brackets_binds():
    try:
        bound = listen("[::1]", 0)
    except BadInputError:
        pytest.skip("no IPv6 loopback on this machine")
    with bound:
        assert bound.getsockname()[0] == "::1"


def test_localhost_binds_ipv4_as_uvicorn_did():
    with listen("localhost", 0) as bound:
        assert bound.family == socket.AF_INET and bound.getsockname()[0] == "127.0.0.1"
        # Said to be TCP, so asyncio turns Nagle's algorithm off on its connections (without
        # it every response waited ~40 ms for the client's delayed ACK).
        assert bound.proto == socket.IPPROTO_TCP
