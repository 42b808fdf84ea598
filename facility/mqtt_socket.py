"""The socket under the MQTT client: paho's reads served from a buffer, and what it has not read.

Apart from facility.mqtt because it is the one place that reaches below paho's public API (its
`_create_socket`), for speed: paho reads a packet in three or more `recv` calls, each a system
call, and the event loop must be told of bytes already taken from the socket.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import paho.mqtt.client as paho

READ_CHUNK = 64 * 1024  # bytes taken from the socket per system call


class ReadBuffer:
    """The broker's socket, read READ_CHUNK bytes at a time.

    paho reads a packet in three or more `recv` calls (type, length, body), each a system call;
    from a buffer they are slices. Everything else goes to the socket itself."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""
        self._at = 0

    @property
    def buffered(self) -> int:
        return len(self._data) - self._at

    def recv(self, n: int) -> bytes:
        if self._at >= len(self._data):
            self._data, self._at = self._sock.recv(max(n, READ_CHUNK)), 0  # BlockingIOError when empty
        chunk = self._data[self._at : self._at + n]
        self._at += len(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def waiting(sock: Any) -> int:
    """Bytes already taken from the socket and not yet read by paho: in our read buffer, or
    decrypted inside a TLS socket. The event loop cannot see either, so a read must go on."""
    if isinstance(sock, ReadBuffer):
        return sock.buffered
    if isinstance(sock, ssl.SSLSocket):
        return sock.pending()
    return 0


class BufferedClient(paho.Client):
    """paho's client, reading a plain TCP connection through a ReadBuffer."""

    def _create_socket(self) -> Any:
        """paho's socket behind a read buffer; a TLS or WebSocket connection stays as paho made it."""
        sock = super()._create_socket()
        return ReadBuffer(sock) if type(sock) is socket.socket else sock
