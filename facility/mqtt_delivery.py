"""Received MQTT messages handed on in batches, and acknowledged only once what they carried is safe.

Apart from the connection (facility.mqtt) because this is the "nothing lost" promise of QoS 1: a
handler that fails on a batch is given its messages one by one, and with manual acknowledgement a
message is acknowledged only after its batch was handled and `ack_after`'s future completed. A
message never acknowledged is delivered again by the broker on the next connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Message = tuple[str, bytes | bytearray]
MessageHandler = Callable[[list[Message]], None]
# Called after the handler took a batch holding QoS 1/2 messages: None when what it carried is
# already safe, else a future that completes once it is (the acknowledgements wait for it).
AckAfter = Callable[[], "asyncio.Future[None] | None"]
Received = tuple[str, bytes | bytearray, int, int]  # topic, payload, message id, QoS
Ack = Callable[[int, int], object]  # paho's ack(mid, qos)


class Delivery:
    """Hands batches to the handler and owes their acknowledgements until they are safe."""

    def __init__(
        self, on_messages: MessageHandler | None, ack: Ack, manual_ack: bool, ack_after: AckAfter | None
    ) -> None:
        self._on_messages = on_messages
        self._ack_one = ack
        self._manual_ack = manual_ack
        self._ack_after = ack_after
        self.waiting: set[asyncio.Future[None]] = set()  # batches handled, not yet safe
        self.received = 0  # messages handed to on_messages

    def deliver(self, received: list[Received]) -> None:
        """Hand `received` to the handler as one batch, then acknowledge it (at once, or once safe)."""
        self.received += len(received)
        if self._on_messages is not None:
            self._hand_on(self._on_messages, received)
        if not self._manual_ack:
            return
        owed = [(mid, qos) for _, _, mid, qos in received if qos]
        if not owed:
            return
        waiter = self._ack_after() if self._ack_after is not None else None
        if waiter is None:
            self._ack(owed)
            return
        self.waiting.add(waiter)
        waiter.add_done_callback(lambda done: self._acked(done, owed))

    @staticmethod
    def _hand_on(handler: MessageHandler, received: list[Received]) -> None:
        try:
            handler([(topic, payload) for topic, payload, _, _ in received])
        except Exception:
            # A handler that fails on a batch must not stall the broker's in-flight window:
            # hand the messages on one by one, and give up (loudly) only on those that fail.
            log.exception("MQTT handler failed on a batch of %d; retrying one by one", len(received))
            for topic, payload, _, _ in received:
                try:
                    handler([(topic, payload)])
                except Exception:
                    log.exception("MQTT handler failed on a message on %s; dropped: %r", topic, bytes(payload[:200]))

    async def settle(self, timeout: float) -> int:
        """Wait, at most `timeout` seconds, until every acknowledgement owed has been handed to
        paho; returns how many batches are still unacknowledged (the broker delivers them again)."""
        if self.waiting:
            await asyncio.wait(set(self.waiting), timeout=timeout)
        return len(self.waiting)

    def _acked(self, done: asyncio.Future[None], owed: list[tuple[int, int]]) -> None:
        self.waiting.discard(done)
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
            self._ack_one(mid, qos)
