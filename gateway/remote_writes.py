"""Modbus writes from a central desk, carried to the estate's gateway and answered
(facility.write_requests says what travels).

- `WriteDoor` runs beside an estate's gateway that sends its readings upstream. It takes the
  centre's requests and writes each through the estate's own audited write: the gateway checks
  the allow-list and the range there, whatever the centre's copy of the site file says, and the
  estate's audit log records the attempt with the centre's user. A request it has seen (QoS 1
  delivers again after a reconnect) is answered again without writing twice; one past its expiry
  is refused.
- `RemoteGateway` is the centre's side: what the centre's audited write calls in place of a local
  gateway. It publishes the request and waits for the answer for ANSWER_WAIT_S; no answer is a
  `DeviceOffline` that says the write may not have happened (the request expires with the wait,
  so it will not happen later).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable

import msgspec

from facility.model import Value
from facility.mqtt import MqttClient
from facility.mqtt_delivery import Message
from facility.readiness import Figure, PartState
from facility.site import Site
from facility.write_requests import (
    RequestExpired,
    WriteAnswer,
    WriteRequest,
    answer_of,
    answers_topic,
    decode_answer,
    decode_request,
    encode,
    raise_for,
    requests_topic,
)
from facility.writes import DeviceOffline, WriteError, WritePoint

log = logging.getLogger(__name__)

ANSWER_WAIT_S = 10.0  # a Modbus write with its read-back takes well under a second; the rest is the WAN
ANSWERS_KEPT = 1000  # answers remembered per door, for requests delivered again


class WriteDoor:
    """The estate's side: the centre's write requests, through the estate's audited write."""

    def __init__(self, site: Site, write: WritePoint, client_id: str) -> None:
        self._site_id = site.site.id
        self._write = write
        # request id -> its answer, or the write under way: a copy delivered meanwhile waits for it
        self._answers: OrderedDict[str, asyncio.Future[WriteAnswer]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._mqtt = MqttClient.of(
            site.uplink or site.broker,
            client_id=client_id,
            subscriptions=[(requests_topic(self._site_id), 1)],
            on_messages=self._received,
            name="write requests",
        )

    async def start(self) -> None:
        await self._mqtt.start(required=False)

    def _received(self, batch: list[Message]) -> None:
        for topic, payload in batch:
            try:
                request = decode_request(payload)
            except msgspec.DecodeError as exc:
                log.error("a write request on %s that cannot be read was ignored: %s", topic, exc)
                continue
            task = asyncio.create_task(self._carry_out(request), name=f"write request {request.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _carry_out(self, request: WriteRequest) -> None:
        """Write, or wait for the write of the same request already under way, and answer."""
        answer = self._answers.get(request.id)
        if answer is None:
            answer = self._answers[request.id] = asyncio.ensure_future(self._answer(request))
            while len(self._answers) > ANSWERS_KEPT:
                self._answers.popitem(last=False)
        self._mqtt.publish(request.answer_to, encode(await answer), qos=1)

    async def _answer(self, request: WriteRequest) -> WriteAnswer:
        return answer_of(request, await self._done(request))

    async def _done(self, request: WriteRequest) -> Value | WriteError:
        late_s = (time.time_ns() - request.expires_ns) / 1e9
        if late_s > 0:
            log.warning(
                "write request %s for %s/%s came %.1f s late; not written",
                request.id,
                request.device,
                request.point,
                late_s,
            )
            return RequestExpired(f"the request reached the estate's gateway {late_s:.1f} s after the centre gave up")
        log.info(
            "write request from the centre: %s/%s = %r by %s",
            request.device,
            request.point,
            request.value,
            request.actor,
        )
        try:
            return await self._write(
                request.device, request.point, request.value, actor=request.actor, source=f"centre {request.source}"
            )
        except WriteError as exc:
            return exc

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=ANSWER_WAIT_S)
        await self._mqtt.stop()

    def parts(self) -> Iterable[PartState]:
        yield from self._mqtt.parts()

    def figures(self) -> Iterable[Figure]:
        yield from self._mqtt.figures()


class RemoteGateway:
    """The centre's side: a write sent to the estate's gateway, and its answer awaited."""

    def __init__(self, site: Site, requester: str) -> None:
        self._site_id = site.site.id
        self._answer_to = answers_topic(self._site_id, requester)
        self._waiting: dict[str, asyncio.Future[WriteAnswer]] = {}
        self._mqtt = MqttClient.of(
            site.uplink or site.broker,
            client_id=requester,
            subscriptions=[(self._answer_to, 1)],
            on_messages=self._answered,
            name="write answers",
        )

    async def start(self) -> None:
        await self._mqtt.start(required=False)

    async def write(self, device_id: str, point: str, value: Value, *, actor: str = "", source: str = "") -> Value:
        """The value the estate's gateway read back; the WriteError it raised, raised here."""
        assert value is not None  # the API's write model admits no null
        request = WriteRequest(
            uuid.uuid4().hex,
            device_id,
            point,
            value,
            actor,
            source,
            time.time_ns() + int(ANSWER_WAIT_S * 1e9),
            self._answer_to,
        )
        waiting = self._waiting[request.id] = asyncio.get_running_loop().create_future()
        try:
            self._mqtt.publish(requests_topic(self._site_id), encode(request), qos=1)
            answer = await asyncio.wait_for(waiting, ANSWER_WAIT_S)
        except TimeoutError:
            raise DeviceOffline(
                f"the estate's gateway did not answer within {ANSWER_WAIT_S:g} s; the write may not have"
                " happened, and will not happen later"
            ) from None
        finally:
            del self._waiting[request.id]
        return raise_for(answer)

    def _answered(self, batch: list[Message]) -> None:
        for _topic, payload in batch:
            try:
                answer = decode_answer(payload)
            except msgspec.DecodeError as exc:
                log.error("a write answer that cannot be read was ignored: %s", exc)
                continue
            waiting = self._waiting.get(answer.id)
            if waiting is not None and not waiting.done():
                waiting.set_result(answer)

    async def stop(self) -> None:
        await self._mqtt.stop()

    def parts(self) -> Iterable[PartState]:
        yield from self._mqtt.parts()

    def figures(self) -> Iterable[Figure]:
        yield from self._mqtt.figures()
