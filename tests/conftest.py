"""Shared fixtures. Every test runs with the network cut off, to prove the offline path."""
from __future__ import annotations

import socket

import pytest

_LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost", "0.0.0.0")


class NetworkBlocked(RuntimeError):
    """A test tried to reach the network; the course must work offline."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse every socket connection that does not stay on this machine (loopback, UNIX sockets)."""
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in _LOCAL_HOSTS:
            raise NetworkBlocked(f"tests run offline, but something tried to connect to {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", _refuse_remote(socket.create_connection))
    yield


def _refuse_remote(create_connection):
    def guarded(address, *args, **kwargs):
        if address[0] not in _LOCAL_HOSTS:
            raise NetworkBlocked(f"tests run offline, but something tried to connect to {address!r}")
        return create_connection(address, *args, **kwargs)

    return guarded


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Unit tests write features to their own cache folder, never the learner's."""
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def backbone():
    import tlcourse as tl

    return tl.load_backbone()


@pytest.fixture(scope="session")
def elpv():
    import tlcourse as tl

    return tl.load_elpv()
