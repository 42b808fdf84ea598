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
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from facility.aio import cancel_all
from facility.mqtt_delivery import AckAfter, Delivery, MessageHandler, Received
from facility.mqtt_settings import Broker
from facility.mqtt_socket import BufferedClient, waiting
from facility.readiness import Figure, PartState, State

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
HOUSEKEEPING_S = 1.0  # how often paho checks keepalive and its in-flight messages
RECONNECT_FIRST_S = 0.5  # pause before reconnecting, doubled per failure ...
RECONNECT_MAX_S = 2.0  # ... up to this: a broker back from a crash has the gateway again within 2 s
MAX_PACKETS_PER_READ = 500  # per readable event: the loop turns every few ms, for the other tasks


class MqttError(RuntimeError):
    pass


class MqttClient:
    """An MQTT connection kept up by a task of the event loop, read on the loop thread."""

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
        self._kept_session = bool(client_id)
        self._birth = birth  # published on every connect, e.g. a retained "online" status
        self._client = c = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id, manual_ack=manual_ack
        )
        if username:
            c.username_pw_set(username, password)
        if tls:
            c.tls_set(ca_certs=ca_file)
        if will:
            c.will_set(*will)
        self._hook_callbacks()
        c.connect_async(host, port, keepalive=KEEPALIVE_S)
        self._delivery = Delivery(on_messages, c.ack, manual_ack, ack_after)
        self._pending: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._fd: int | None = None  # the socket the loop watches
        self._keeper: asyncio.Task[None] | None = None
        self._up = asyncio.Event()  # connected and subscribed
        self._closed = asyncio.Event()  # the socket has gone (stop waits for it)
        self._subscribe_mid: int | None = None
        self._paused = False  # stop() is on its way: read nothing more, send what is owed
        # Counters and times for readiness and /metrics.
        self.reconnects = 0  # connections after the first
        self._connects = 0
        self._last_success_ns: int | None = None  # the last connect or packet read
        self._lost_at: int | None = None  # wall time (ns) the connection was lost; None while up

    def _hook_callbacks(self) -> None:
        """paho calls these for protocol events (on the loop thread) and socket events (on the
        loop thread, or the keeper's worker thread while it connects)."""
        c = self._client
        c.on_connect = self._connected
        c.on_subscribe = self._subscribed
        c.on_disconnect = self._disconnected
        c.on_message = self._received
        c.on_socket_open = self._socket_opened
        c.on_socket_close = self._socket_closed
        c.on_socket_register_write = self._want_write
        c.on_socket_unregister_write = self._done_writing

    @property
    def received(self) -> int:
        """Messages handed to on_messages."""
        return self._delivery.received

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
        return await self._delivery.settle(timeout)

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
            if len(pending) == before and not waiting(sock):
                break
        else:
            if self._loop is not None and self._fd is not None:
                self._loop.call_soon(self._readable)  # bytes may wait in the buffer: the socket will not say
        self._last_success_ns = time.time_ns()
        if pending:
            self._pending = []
            self._delivery.deliver(pending)

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
            len(self._delivery.waiting),
            labels,
        )
