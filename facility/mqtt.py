"""One MQTT client for the whole project: paho-mqtt, joined to asyncio.

paho runs its network loop in its own thread (which also reconnects and, through on_connect,
resubscribes). Incoming messages are queued and handed to the event loop in batches: one
loop wake-up per burst instead of one per message, which keeps the ingest hot path cheap.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)

Message = tuple[str, bytes | bytearray]
KEEPALIVE_S = 30
MessageHandler = Callable[[list[Message]], None]


class MqttError(RuntimeError):
    pass


class MqttClient:
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
        manual_ack: bool = False,
    ) -> None:
        """With a `client_id` the broker keeps the session (subscriptions and QoS 1/2 messages
        queued while this client is away). With `manual_ack`, QoS 1/2 messages are acknowledged
        only after `on_messages` has returned for their batch, so a crash before then makes the
        broker deliver them again."""
        self.host, self.port = host, port
        self._subscriptions = list(subscriptions)
        self._on_messages = on_messages
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id, manual_ack=manual_ack
        )
        self._manual_ack = manual_ack
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if username:
            self._client.username_pw_set(username, password)
        if will:
            topic, payload, qos, retain = will
            self._client.will_set(topic, payload, qos, retain)
        self._birth = birth  # published on every connect, e.g. a retained "online" status
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._received
        self._pending: deque[tuple[str, bytes | bytearray, int, int]] = deque()  # topic, payload, mid, qos
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and wait for the broker's acknowledgement (paho keeps retrying meanwhile)."""
        self._loop = asyncio.get_running_loop()
        await self._connect(timeout)

    async def _connect(self, timeout: float) -> None:
        self._client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise MqttError(f"no MQTT broker answered at {self.host}:{self.port} within {timeout:g}s") from None

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)

    async def drop(self) -> None:
        """Cut the connection without a DISCONNECT, as a device that loses power or its network
        does: the broker then publishes the last will. `resume` connects again."""
        await asyncio.to_thread(self._client.loop_stop)
        sock = self._client.socket()
        if sock is not None:
            sock.close()
        self._up.clear()

    async def resume(self, timeout: float = 10.0) -> None:
        await self._connect(timeout)

    # paho's thread from here on.

    def _connected(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        for topic, qos in self._subscriptions:
            client.subscribe(topic, qos)
        if self._birth:
            topic, payload, qos, retain = self._birth
            client.publish(topic, payload, qos, retain)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._up.set)

    def _disconnected(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.value != 0:
            log.warning("MQTT connection to %s:%s lost (%s); reconnecting", self.host, self.port, reason)

    def _received(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        self._pending.append((message.topic, message.payload, message.mid, message.qos))
        if not self._drain_scheduled and self._loop is not None:
            self._drain_scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    # The event loop from here on.

    def _drain(self) -> None:
        self._drain_scheduled = False
        pending = self._pending
        received = [pending.popleft() for _ in range(len(pending))]
        if received and self._on_messages is not None:
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
        if self._manual_ack:
            for _, _, mid, qos in received:
                if qos:
                    self._client.ack(mid, qos)
