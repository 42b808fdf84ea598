"""One MQTT client for the whole project: paho-mqtt, driven by the asyncio event loop.

paho's network loop does not run in a thread of its own: the event loop watches the socket and
calls paho to read and write. Received messages are handled on the loop thread with no hand-off
between threads, and one readable event reads every complete packet waiting, handing the messages
on as one batch. Measured in bench/ingest.py: faster than paho's own threaded loop, which pays a
select() per message and contends for the GIL with the loop.

A keeper task owns the connection: it connects (in a worker thread, as a TCP connect can block),
sends keepalives, and reconnects with a growing pause. On every connect paho's on_connect
resubscribes and publishes the birth message. A kept session (a client id) that the broker no
longer has — it crashed before saving it — is a gap: messages published for this client while it
was away are gone. That is logged as a warning with the gap's start.

With `manual_ack`, QoS 1/2 messages are acknowledged only once `ack_after` says what their batch
carried is safe (in a store or on disk): a crash before then makes the broker deliver them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from facility.aio import cancel_all
from facility.readiness import Figure, PartState, State
from facility.site import Broker

log = logging.getLogger(__name__)

Message = tuple[str, bytes | bytearray]
MessageHandler = Callable[[list[Message]], None]
# Called after the handler took a batch holding QoS 1/2 messages: None when what it carried is
# already safe, else a future that completes once it is (the acknowledgements wait for it).
AckAfter = Callable[[], "asyncio.Future[None] | None"]
KEEPALIVE_S = 30
HOUSEKEEPING_S = 1.0  # how often paho checks keepalive and its in-flight messages
RECONNECT_FIRST_S = 0.5  # pause before reconnecting, doubled per failure ...
RECONNECT_MAX_S = 2.0  # ... up to this: a broker back from a crash has the gateway again within 2 s
MAX_PACKETS_PER_READ = 500  # per readable event: the loop turns every few ms, for the other tasks
READ_CHUNK = 64 * 1024  # bytes taken from the socket per system call


class MqttError(RuntimeError):
    pass


class _ReadBuffer:
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


def _waiting(sock: Any) -> int:
    """Bytes already taken from the socket and not yet read by paho: in our read buffer, or
    decrypted inside a TLS socket. The event loop cannot see either, so a read must go on."""
    if isinstance(sock, _ReadBuffer):
        return sock.buffered
    if isinstance(sock, ssl.SSLSocket):
        return sock.pending()
    return 0


class _Client(paho.Client):
    def _create_socket(self) -> Any:
        """paho's socket behind a read buffer; a TLS or WebSocket connection stays as paho made it."""
        sock = super()._create_socket()
        return _ReadBuffer(sock) if type(sock) is socket.socket else sock


class MqttClient:
    @classmethod
    def of(cls, broker: Broker, login: tuple[str, str | None] | None = None, **options: Any) -> MqttClient:
        """A client of the site's broker: its address, TLS and CA, and its user (or `login`, a
        device's own user and password), so that no caller forgets one of them."""
        username, password = login or (broker.username, broker.password)
        return cls(
            broker.host,
            broker.port,
            username=username,
            password=password,
            tls=broker.tls,
            ca_file=broker.ca_file,
            **options,
        )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "",
        subscriptions: Sequence[tuple[str, int]] = (),
        on_messages: MessageHandler | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        birth: tuple[str, bytes, int, bool] | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        manual_ack: bool = False,
        ack_after: AckAfter | None = None,
        name: str = "",
    ) -> None:
        """With a `client_id` the broker keeps the session (subscriptions and QoS 1/2 messages
        queued while this client is away). With `manual_ack`, QoS 1/2 messages are acknowledged
        only after `on_messages` has returned for their batch and, with `ack_after`, once the
        future it gives has completed, so a crash before then makes the broker deliver them again.
        `name` says in readiness and metrics which client this is (default: the client id).
        With `tls` the broker's certificate and host name are checked, against `ca_file` (PEM)
        or else the system's CAs."""
        self.host, self.port = host, port
        self.name = name or client_id or "mqtt"
        self._subscriptions = list(subscriptions)
        self._on_messages = on_messages
        self._manual_ack = manual_ack
        self._ack_after = ack_after
        self._kept_session = bool(client_id)
        self._birth = birth  # published on every connect, e.g. a retained "online" status
        c = _Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id, manual_ack=manual_ack
        )
        if username:
            c.username_pw_set(username, password)
        if tls:
            c.tls_set(ca_certs=ca_file)
        if will:
            topic, payload, qos, retain = will
            c.will_set(topic, payload, qos, retain)
        c.on_connect = self._connected
        c.on_subscribe = self._subscribed
        c.on_disconnect = self._disconnected
        c.on_message = self._received
        c.on_socket_open = self._socket_opened
        c.on_socket_close = self._socket_closed
        c.on_socket_register_write = self._want_write
        c.on_socket_unregister_write = self._done_writing
        c.connect_async(host, port, keepalive=KEEPALIVE_S)
        self._client = c
        self._pending: list[tuple[str, bytes | bytearray, int, int]] = []  # topic, payload, mid, qos
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._fd: int | None = None  # the socket the loop watches
        self._keeper: asyncio.Task[None] | None = None
        self._up = asyncio.Event()  # connected and subscribed
        self._closed = asyncio.Event()  # the socket has gone (stop waits for it)
        self._subscribe_mid: int | None = None
        self._paused = False  # stop() is on its way: read nothing more, send what is owed
        self._acks_waiting: set[asyncio.Future[None]] = set()
        # Counters and times for readiness and /metrics.
        self.received = 0  # messages handed to on_messages
        self.reconnects = 0  # connections after the first
        self._connects = 0
        self._last_success_ns: int | None = None  # the last connect or packet read
        self._lost_at: int | None = None  # wall time (ns) the connection was lost; None while up

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    async def start(self, timeout: float = 10.0, *, required: bool = True) -> None:
        """Connect, and return once the broker has acknowledged the connection and every
        subscription, so that nothing published after this returns is missed.

        Not `required` (the service's own clients), a broker that does not answer within `timeout`
        is said once and the client keeps trying in the background, subscribing when it connects:
        a service started before its broker (or while it restarts) runs its Modbus devices, rules
        and desk meanwhile, and /readyz shows the broker down."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._keeper = asyncio.create_task(self._keep(), name=f"mqtt {self.host}:{self.port}")
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            if not required:
                log.warning(
                    "MQTT broker %s:%s did not answer within %gs; starting without it (%s) and connecting"
                    " as soon as it answers",
                    self.host,
                    self.port,
                    timeout,
                    self.name,
                )
                return
            await self._halt()
            raise MqttError(f"no MQTT broker answered at {self.host}:{self.port} within {timeout:g}s") from None

    def pause(self) -> None:
        """Read no more messages (they stay with the broker, for the next start); the
        acknowledgements owed for what was already read still go out."""
        self._paused = True
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)

    async def settle(self, timeout: float) -> int:
        """Wait, at most `timeout` seconds, until every acknowledgement owed has been handed to
        paho; returns how many batches are still unacknowledged (the broker delivers them again)."""
        if self._acks_waiting:
            await asyncio.wait(set(self._acks_waiting), timeout=timeout)
        return len(self._acks_waiting)

    async def stop(self) -> None:
        """Disconnect cleanly (the broker does not publish the will) and stop reconnecting."""
        if self._client.is_connected():
            self._closed.clear()
            self._client.disconnect()  # paho closes the socket once the DISCONNECT is written
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), 2.0)
        await self._halt()

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        """QoS 1/2 messages published while disconnected are kept by paho and sent on reconnect;
        a QoS 0 message has no such promise and is dropped, as the protocol allows."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    async def drop(self) -> None:
        """Cut the connection without a DISCONNECT, as a device that loses power or its network
        does: the broker then publishes the last will. `resume` connects again."""
        sock = self._client.socket()
        await self._halt()
        if sock is not None:
            sock.close()

    async def resume(self, timeout: float = 10.0) -> None:
        await self.start(timeout)

    async def _halt(self) -> None:
        if self._keeper is not None:
            await cancel_all([self._keeper])
            self._keeper = None
        self._unwatch()
        self._up.clear()

    async def _keep(self) -> None:
        pause = RECONNECT_FIRST_S
        while True:
            try:
                await asyncio.to_thread(self._client.reconnect)
            except (OSError, ValueError) as exc:
                log.warning("MQTT broker %s:%s unreachable (%s); retrying in %gs", self.host, self.port, exc, pause)
            else:
                # The socket callbacks paho made from the worker have run by now, in order.
                while self._fd is not None:
                    await asyncio.sleep(HOUSEKEEPING_S)
                    self._client.loop_misc()  # keepalive; closes a socket the broker stopped answering on
                if self._up.is_set():
                    pause = RECONNECT_FIRST_S  # it was up: the next attempt starts afresh
                self._up.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_S)

    # Socket events; paho calls these on the loop thread, or on the keeper's worker while it
    # connects.

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    def _socket_opened(self, _c: Any, _u: Any, sock: Any) -> None:
        self._on_loop(self._watch, sock.fileno())

    def _socket_closed(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._on_loop(self._unwatch)

    def _want_write(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._on_loop(self._writer, True)

    def _done_writing(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._on_loop(self._writer, False)

    def _watch(self, fd: int) -> None:
        assert self._loop is not None
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = fd
        if not self._paused:
            self._loop.add_reader(fd, self._readable)
        if self._client.want_write():
            self._loop.add_writer(fd, self._client.loop_write)

    def _unwatch(self) -> None:
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = None
        self._closed.set()

    def _writer(self, on: bool) -> None:
        if self._fd is None or self._loop is None:
            return  # not watching yet: _watch registers the writer if paho still wants it
        if on:
            self._loop.add_writer(self._fd, self._client.loop_write)
        else:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        """Read every complete packet waiting, then hand the messages on as one batch.

        paho's loop_read reads one packet per call; a call that yields no message with nothing
        left in the read buffer (or, over TLS, decrypted and unread) means the socket is drained
        (or a packet other than PUBLISH came, and the next readable event reads on)."""
        pending = self._pending
        sock = self._client.socket()
        for _ in range(MAX_PACKETS_PER_READ):
            before = len(pending)
            if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if len(pending) == before and not _waiting(sock):
                break
        else:
            if self._loop is not None and self._fd is not None:
                self._loop.call_soon(self._readable)  # bytes may wait in the buffer: the socket will not say
        self._last_success_ns = time.time_ns()
        if pending:
            self._pending = []
            self._deliver(pending)

    # Protocol events, on the loop thread.

    def _connected(self, client: paho.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        self._connects += 1
        self.reconnects = self._connects - 1
        self._last_success_ns = time.time_ns()
        if self._kept_session and self._connects > 1 and not flags.session_present:
            since = self._lost_at or self._last_success_ns
            log.warning(
                "MQTT broker %s:%s has lost the session of %s (a crash before it saved it): messages "
                "published for it since %s may be gone; subscribing again now",
                self.host,
                self.port,
                self.name,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since / 1e9)),
            )
        self._lost_at = None
        if self._birth:
            topic, payload, qos, retain = self._birth
            client.publish(topic, payload, qos, retain)
        if self._subscriptions:
            _, self._subscribe_mid = client.subscribe(self._subscriptions)
        else:
            self._up.set()

    def _subscribed(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [t for (t, _), r in zip(self._subscriptions, reasons, strict=False) if r.is_failure]
        if refused:
            log.error("MQTT broker %s:%s refused the subscriptions %s", self.host, self.port, refused)
        self._up.set()

    def _disconnected(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._lost_at is None:
            self._lost_at = time.time_ns()
        if reason.value != 0:
            log.warning("MQTT connection to %s:%s lost (%s); reconnecting", self.host, self.port, reason)

    def _received(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        self._pending.append((message.topic, message.payload, message.mid, message.qos))

    def _deliver(self, received: list[tuple[str, bytes | bytearray, int, int]]) -> None:
        self.received += len(received)
        if self._on_messages is not None:
            try:
                self._on_messages([(topic, payload) for topic, payload, _, _ in received])
            except Exception:
                # A handler that fails on a batch must not stall the broker's in-flight window:
                # hand the messages on one by one, and give up (loudly) only on those that fail.
                log.exception("MQTT handler failed on a batch of %d; retrying one by one", len(received))
                for topic, payload, _, _ in received:
                    try:
                        self._on_messages([(topic, payload)])
                    except Exception:
                        log.exception(
                            "MQTT handler failed on a message on %s; dropped: %r", topic, bytes(payload[:200])
                        )
        if not self._manual_ack:
            return
        owed = [(mid, qos) for _, _, mid, qos in received if qos]
        if not owed:
            return
        waiter = self._ack_after() if self._ack_after is not None else None
        if waiter is None:
            self._ack(owed)
            return
        self._acks_waiting.add(waiter)
        waiter.add_done_callback(lambda done: self._acked(done, owed))

    def _acked(self, done: asyncio.Future[None], owed: list[tuple[int, int]]) -> None:
        self._acks_waiting.discard(done)
        if done.cancelled() or done.exception() is not None:
            # Not safe: leave them unacknowledged. The broker delivers them again on the next
            # connection (the session is kept), so nothing is lost.
            log.error("%d MQTT messages not acknowledged: what they carried was not stored", len(owed))
            return
        self._ack(owed)

    def _ack(self, owed: list[tuple[int, int]]) -> None:
        # The connection may have dropped since: the broker then delivers these again, and an
        # acknowledgement that reaches it for a message id it no longer waits on is ignored.
        for mid, qos in owed:
            self._client.ack(mid, qos)

    # Readiness and metrics.

    def parts(self) -> Iterable[PartState]:
        state = State.UP if self._up.is_set() and self.connected else State.DOWN
        detail = "" if state is State.UP else f"not connected to {self.host}:{self.port}"
        yield PartState(f"broker {self.host}:{self.port} ({self.name})", "broker", state, self._last_success_ns, detail)

    def figures(self) -> Iterable[Figure]:
        labels = (("client", self.name),)
        yield Figure("mqtt_reconnects_total", "MQTT connections after the first", "counter", self.reconnects, labels)
        yield Figure("mqtt_messages_received_total", "MQTT messages read", "counter", self.received, labels)
        yield Figure(
            "mqtt_unacked_batches",
            "received batches waiting to be safe before acknowledgement",
            "gauge",
            len(self._acks_waiting),
            labels,
        )
