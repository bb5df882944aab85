"""Run-config checks that need no model: Ray addresses (syntax, a listening port) and Ray-only settings."""

from __future__ import annotations

import socket

import pytest

from harness.run.config import RunConfig, check_address_syntax, check_reachable
from harness.errors import HarnessError


@pytest.mark.parametrize("address, expected", [
    ("auto", None), ("local", None), ("10.0.0.2:6379", ("10.0.0.2", 6379)), ("ray://head:10001", ("head", 10001)),
    ("ray://head", ("head", 10001)), ("[::1]:6379", ("::1", 6379)),
])
def test_address_syntax(address, expected):
    assert check_address_syntax(address) == expected


@pytest.mark.parametrize("address", ["http://head:8265", "head", "head:0", "head:70000", "a b:1", ""])
def test_bad_address_syntax(address):
    with pytest.raises(HarnessError, match=r"^--address: expected HOST:PORT, ray://HOST\[:PORT\] or auto"):
        check_address_syntax(address)


def test_reachable_only_when_something_listens():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")  # nothing raised
    with pytest.raises(HarnessError, match=rf"^--address 127.0.0.1:{port}: cannot connect \(connection refused\)"):
        check_reachable(f"127.0.0.1:{port}")
    check_reachable(None), check_reachable("auto")  # nothing to probe


def test_no_ray_refuses_ray_only_flags_and_keeps_threads():
    base = {"tasks": "instructions-mini", "no_ray": True}
    assert RunConfig.from_sources(None, base | {"threads": 2}).threads == 2
    for flag, value in (("num_cpus", 2), ("address", "127.0.0.1:6379"), ("replicas", "2")):
        with pytest.raises(HarnessError, match=f"^--{flag.replace('_', '-')}: .* needs Ray"):
            RunConfig.from_sources(None, base | {flag: value})
