"""Loopback port allocation: distinct, free, and never a port recorded for another deployment."""

from __future__ import annotations

import socket

from oar.supervise import allocate_ports, port_is_free, release_ports


def test_allocated_ports_are_distinct_free_and_avoid_taken_ones() -> None:
    first = allocate_ports(2)
    assert len(set(first)) == 2 and all(port_is_free(p) for p in first)
    second = allocate_ports(2, taken=first)
    assert not set(first) & set(second)  # also held back as recently handed out
    release_ports(first + second)


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])
