"""What `imgret serve` decides before it starts: which addresses are loopback."""

from __future__ import annotations

import pytest

from imgret.serve.run import is_loopback


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
