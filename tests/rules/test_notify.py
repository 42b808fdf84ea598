"""Notifications reach real receivers: HTTP servers started here that record each request and can
be told to answer slowly, fail or refuse, and Mosquitto through a facility.mqtt subscriber."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from facility.aio import cancel_all
from facility.bus import Bus, LocalBus
from facility.mqtt import MqttClient
from facility.mqtt_delivery import Message
from facility.records import NewAlarm
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from facility.vocabulary import EventKind
from rules.notify import Notifier
from testsupport.servers import Mosquitto

RAISED_AT = 1714543385 * 10**9  # 2024-05-01 06:03:05 UTC, 14:03:05 in Shanghai
OK = (200, b'{"errcode":0,"errmsg":"ok"}')
TIMEOUT = 10.0  # waiting for something that should come promptly


@dataclass
class Request:
    target: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}


@dataclass
class Receiver:
    """An HTTP/1.1 server on a free port. It answers from `answers` in turn (then 200), and while
    `release` is clear it holds every request unanswered, as a receiver that hangs."""

    answers: list[tuple[int, bytes]] = field(default_factory=list)
    arrived: asyncio.Queue[Request] = field(default_factory=asyncio.Queue)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def next(self) -> Request:
        return await asyncio.wait_for(self.arrived.get(), TIMEOUT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                target = line.decode().split(" ")[1]
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, value = header.decode().split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.arrived.put_nowait(Request(target, headers, body))
                await self.release.wait()
                status, answer = self.answers.pop(0) if self.answers else OK
                head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
                writer.write(head.encode() + answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (a timeout) or closed its connection
        finally:
            writer.close()


@asynccontextmanager
async def receiver(answers: list[tuple[int, bytes]] | None = None, hold: bool = False) -> AsyncIterator[Receiver]:
    r = Receiver(answers=list(answers or []))
    if not hold:
        r.release.set()
    handlers: set[asyncio.Task[Any]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.append(writer)
        await r._serve(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    r.port = server.sockets[0].getsockname()[1]
    try:
        yield r
    finally:
        server.close()
        r.release.set()
        for writer in writers:
            writer.transport.abort()
        await asyncio.wait_for(asyncio.gather(*handlers), TIMEOUT)


def make_site(tmp_path: Path, webhooks: list[dict[str, Any]], mqtt: bool = True) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t, timezone: Asia/Shanghai}\n"
        f"notifications: {json.dumps({'mqtt': mqtt, 'webhooks': webhooks})}\n"
        "devices:\n"
        "  - {id: lift-1, name: 1号梯, profile: elevator, mqtt: {topic: a}, location: {building: 3号楼}}\n"
    )
    return load_site(path)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[OpsStore]:
    ops = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", site="t")
    await ops.start()
    yield ops
    await ops.close()


async def alarm(store: OpsStore, priority: str = "emergency", rule: str = "entrapment") -> dict[str, Any]:
    """A real alarm of the ops store, as the bus carries it; `rule` tells alarms of one device apart."""
    new = NewAlarm(
        rule, "lift-1", priority, "1号梯困人", "Lift 1: passengers trapped", "停在5层", "at floor 5", RAISED_AT
    )
    return (await store.alarms.raise_alarm(new))[0].as_json()


@asynccontextmanager
async def running(notifier: Notifier, bus: Bus) -> AsyncIterator[None]:
    task = asyncio.create_task(notifier.run(bus))
    await asyncio.wait_for(notifier.subscribed.wait(), TIMEOUT)
    try:
        yield
    finally:
        await cancel_all([task])


@asynccontextmanager
async def mqtt_pair(broker: Mosquitto) -> AsyncIterator[tuple[MqttClient, asyncio.Queue[Message]]]:
    """A publisher for the notifier and a subscriber to everything under facility/v1/events/."""
    received: asyncio.Queue[Message] = asyncio.Queue()

    def on_messages(messages: list[Message]) -> None:
        for message in messages:
            received.put_nowait(message)

    subscriber = MqttClient(
        "127.0.0.1", broker.port, subscriptions=[("facility/v1/events/#", 1)], on_messages=on_messages
    )
    publisher = MqttClient("127.0.0.1", broker.port)
    await subscriber.start()
    await publisher.start()
    try:
        yield publisher, received
    finally:
        await publisher.stop()
        await subscriber.stop()


async def test_robots_get_markdown_with_priority_titles_device_and_local_time(tmp_path: Path, store: OpsStore) -> None:
    async with receiver() as wecom, receiver() as dingtalk, receiver() as plain:
        site = make_site(
            tmp_path,
            [
                {"name": "wecom", "url": wecom.url(), "format": "wecom"},
                {"name": "dingtalk", "url": dingtalk.url(), "format": "dingtalk"},
                {"name": "plain", "url": plain.url(), "format": "json"},
            ],
        )
        bus = LocalBus()
        async with running(Notifier(site, store, None), bus):
            raised = await alarm(store)
            bus.publish_event(EventKind.ALARM, raised)
            content = (await wecom.next()).json()
            ding = (await dingtalk.next()).json()
            sent = await plain.next()
            bus.publish_event(EventKind.ESCALATION, {**raised, "changed_at": RAISED_AT + 10**12})
            escalated = (await wecom.next()).json()["markdown"]["content"]
    assert content["msgtype"] == "markdown" and ding["msgtype"] == "markdown"
    assert ding["markdown"]["title"] == "[emergency] 1号梯困人"
    for text in (content["markdown"]["content"], ding["markdown"]["text"]):
        assert "紧急 emergency" in text
        assert "1号梯困人" in text and "Lift 1: passengers trapped" in text
        assert "1号梯 (lift-1), 3号楼" in text
        assert "2024-05-01 14:03:05 (Asia/Shanghai)" in text
        assert "未确认 unacknowledged" in text
    assert sent.headers["content-type"].startswith("application/json")
    assert sent.json() == {"site": "t", "kind": "alarm", "data": raised}
    assert "升级 Escalation · 紧急 emergency" in escalated and "Not acknowledged in time" in escalated
    assert "报警时间 Raised: 2024-05-01 14:03:05" in escalated  # how long it has waited


async def test_webhooks_get_alarms_at_or_above_their_priority_and_every_escalation(
    tmp_path: Path, store: OpsStore
) -> None:
    async with receiver() as managers, receiver() as engineers:
        site = make_site(
            tmp_path,
            [
                {"name": "managers", "url": managers.url(), "min_priority": "emergency"},
                {"name": "engineers", "url": engineers.url(), "min_priority": "medium"},
            ],
        )
        bus = LocalBus()
        async with running(Notifier(site, store, None), bus):
            for priority in ("low", "medium", "high", "emergency"):
                bus.publish_event(EventKind.ALARM, await alarm(store, priority, rule=priority))
            bus.publish_event(
                EventKind.TASK, {"id": 1, "priority": "emergency", "title": {"zh": "维修", "en": "Repair"}}
            )
            shelved = await alarm(store, "emergency", rule="shelved")
            bus.publish_event(EventKind.ALARM, {**shelved, "shelved": True})  # shelved: not announced to people
            bus.publish_event(
                EventKind.ESCALATION, await alarm(store, "low", rule="forgotten")
            )  # the last one published
            to_managers = [(await managers.next()).json() for _ in range(2)]
            to_engineers = [(await engineers.next()).json() for _ in range(4)]
    assert [(b["kind"], b["data"]["priority"]) for b in to_managers] == [("alarm", "emergency"), ("escalation", "low")]
    assert [(b["kind"], b["data"]["priority"]) for b in to_engineers] == [
        ("alarm", "medium"),
        ("alarm", "high"),
        ("alarm", "emergency"),
        ("escalation", "low"),
    ]


async def test_people_hear_of_each_state_once_not_of_comments(tmp_path: Path, store: OpsStore) -> None:
    async with receiver() as hook:
        site = make_site(tmp_path, [{"name": "ops", "url": hook.url(), "min_priority": "low"}])
        bus = LocalBus()
        async with running(Notifier(site, store, None), bus):
            raised = await alarm(store, "high")
            bus.publish_event(EventKind.ALARM, raised)
            bus.publish_event(EventKind.ALARM, {**raised, "chattering": True})  # a flag, same state: not again
            bus.publish_event(EventKind.ALARM, {**raised, "state": "acknowledged"})
            states = [(await hook.next()).json()["data"]["state"] for _ in range(2)]
    assert states == ["unacknowledged", "acknowledged"]


async def test_a_failing_receiver_is_retried_until_it_answers(tmp_path: Path, store: OpsStore) -> None:
    async with receiver(answers=[(500, b""), (503, b"")]) as hook:
        site = make_site(tmp_path, [{"name": "ops", "url": hook.url()}])
        bus = LocalBus()
        async with running(Notifier(site, store, None, attempts=4, backoff=0.01), bus):
            bus.publish_event(EventKind.ALARM, await alarm(store))
            tries = [await hook.next() for _ in range(3)]  # 500, 503, then 200
            bus.publish_event(EventKind.ALARM, await alarm(store, rule="second"))
            after = await hook.next()  # the first is settled before the second goes out
    assert tries[0].body == tries[1].body == tries[2].body
    assert after.json()["data"]["rule"] == "second"
    assert await store.letters.recent() == []


async def test_retries_spent_leave_a_dead_letter_and_the_next_event_goes_out(tmp_path: Path, store: OpsStore) -> None:
    async with receiver(answers=[(500, b"")] * 3) as hook:
        site = make_site(tmp_path, [{"name": "ops-room", "url": hook.url()}])
        bus = LocalBus()
        async with running(Notifier(site, store, None, attempts=3, backoff=0.01), bus):
            bus.publish_event(EventKind.ALARM, await alarm(store))
            tries = [await hook.next() for _ in range(3)]
            bus.publish_event(EventKind.ALARM, await alarm(store, rule="second"))
            await hook.next()  # the dead letter is written before the next event is sent
    [letter] = await store.letters.recent()
    assert (letter.source, letter.key) == ("webhook", "ops-room")
    assert "HTTP 500" in letter.reason and "attempt 3 of 3" in letter.reason
    assert json.loads(letter.payload) == tries[-1].json()


async def test_a_receiver_that_never_answers_times_out_into_a_dead_letter(tmp_path: Path, store: OpsStore) -> None:
    async with receiver(hold=True) as hanging:
        site = make_site(tmp_path, [{"name": "hanging", "url": hanging.url()}])
        bus = LocalBus()
        async with running(Notifier(site, store, None, timeout=0.2, attempts=2, backoff=0.01), bus):
            bus.publish_event(EventKind.ALARM, await alarm(store))
            await hanging.next()
            await hanging.next()  # tried again after the first attempt timed out
            bus.publish_event(EventKind.ALARM, await alarm(store, rule="second"))
            await hanging.next()  # the second event goes out once the first is a dead letter
    [letter] = await store.letters.recent()
    assert letter.key == "hanging" and "Timeout" in letter.reason and "attempt 2 of 2" in letter.reason


async def test_a_slow_receiver_delays_neither_other_webhooks_nor_mqtt(
    tmp_path: Path, store: OpsStore, mosquitto: Mosquitto
) -> None:
    async with receiver(hold=True) as slow, receiver() as fast, mqtt_pair(mosquitto) as (publisher, received):
        site = make_site(tmp_path, [{"name": "slow", "url": slow.url()}, {"name": "fast", "url": fast.url()}])
        bus = LocalBus()
        async with running(Notifier(site, store, publisher.publish, timeout=30), bus):
            alarms = [await alarm(store, rule=f"r{i}") for i in range(3)]
            for raised in alarms:
                bus.publish_event(EventKind.ALARM, raised)
            assert (await slow.next()).json()["data"] == alarms[0]  # and held there, unanswered
            assert [(await fast.next()).json()["data"] for _ in alarms] == alarms
            messages = [await asyncio.wait_for(received.get(), TIMEOUT) for _ in alarms]
            assert [(topic, json.loads(payload)) for topic, payload in messages] == [
                ("facility/v1/events/t/alarm", a) for a in alarms
            ]
            assert slow.arrived.empty()  # the slow one is still on its first
            slow.release.set()
            assert [(await slow.next()).json()["data"] for _ in alarms[1:]] == alarms[1:]
    assert await store.letters.recent() == []


async def test_mqtt_carries_every_kind_the_desk_and_other_processes_follow(
    tmp_path: Path, store: OpsStore, mosquitto: Mosquitto
) -> None:
    async with mqtt_pair(mosquitto) as (publisher, received):
        bus = LocalBus()
        async with running(Notifier(make_site(tmp_path, []), store, publisher.publish), bus):
            sent = [
                ("alarm", await alarm(store)),
                ("device", {"id": "lift-1", "online": False}),  # not a notification
                ("task", {"id": 3, "status": "open"}),
                ("plan", {"id": 4, "state": "open"}),
                ("escalation", {"id": 1, "priority": "emergency"}),
                ("flood", {"active": True, "count": 12}),
            ]
            for kind, data in sent:
                bus.publish_event(EventKind(kind), data)
            got = [await asyncio.wait_for(received.get(), TIMEOUT) for _ in range(5)]
    assert [(topic, json.loads(payload)) for topic, payload in got] == [
        (f"facility/v1/events/t/{kind}", data) for kind, data in sent if kind != "device"
    ]


async def test_signed_deliveries_verify_and_no_secret_reaches_the_logs(
    tmp_path: Path, store: OpsStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret, token = "SECxyzzy-signing-secret", "robot-token-4711"
    monkeypatch.setenv("DING_SECRET", secret)
    caplog.set_level(logging.DEBUG)
    refused = (200, b'{"errcode":310000,"errmsg":"sign not match"}')
    async with receiver(answers=[refused]) as ding, receiver() as plain, receiver() as unset:
        site = make_site(
            tmp_path,
            [
                {"name": "ding", "url": ding.url(f"/robot/send?access_token={token}"), "format": "dingtalk",
                 "secret_env": "DING_SECRET"},
                {"name": "plain", "url": plain.url(), "secret_env": "DING_SECRET"},
                {"name": "unset", "url": unset.url(), "secret_env": "NO_SUCH_SECRET_VAR"},
            ],
        )  # fmt: skip
        bus = LocalBus()
        notifier = Notifier(site, store, None, attempts=3, backoff=0.01)
        async with running(notifier, bus):
            bus.publish_event(EventKind.ALARM, await alarm(store))
            await asyncio.wait_for(notifier.flush(), TIMEOUT)
    first, second = ding.arrived.get_nowait(), ding.arrived.get_nowait()  # refused by the robot, then accepted
    signed = plain.arrived.get_nowait()
    letters = await store.letters.recent()
    for request in (first, second):
        assert request.query["access_token"] == token
        expected = hmac.new(secret.encode(), f"{request.query['timestamp']}\n{secret}".encode(), hashlib.sha256)
        assert request.query["sign"] == base64.b64encode(expected.digest()).decode()
    mac = hmac.new(secret.encode(), signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["x-facility-signature"] == f"sha256={mac}"
    assert unset.arrived.empty()  # no point in sending what the receiver will refuse
    assert [(d.key, "NO_SUCH_SECRET_VAR" in d.reason) for d in letters] == [("unset", True)]
    assert "webhook ding: attempt 1 failed (robot refused: errcode 310000" in caplog.text
    for hidden in (secret, token, ding.url()):
        assert hidden not in caplog.text
        assert all(hidden not in d.reason + d.payload for d in letters)


async def test_what_a_stop_leaves_unsent_is_kept_on_disk_and_sent_at_the_next_start(
    tmp_path: Path, store: OpsStore
) -> None:
    """The receiver hangs while the service stops: the delivery under way and the one queued
    behind it are written to the outbox, and the next run sends them, in order, before anything new."""
    outbox = tmp_path / "journal" / "notifications.json"
    async with receiver(hold=True) as hanging:
        site = make_site(tmp_path, [{"name": "desk-robot", "url": hanging.url()}])
        bus = LocalBus()
        async with running(Notifier(site, store, None, timeout=30, outbox=outbox), bus):
            bus.publish_event(EventKind.ALARM, await alarm(store))
            bus.publish_event(EventKind.ALARM, await alarm(store, rule="second"))
            await hanging.next()  # the first is under way, the second waits behind it
    assert outbox.exists()

    async with receiver() as answering:
        site = make_site(tmp_path, [{"name": "desk-robot", "url": answering.url()}])
        bus = LocalBus()
        async with running(Notifier(site, store, None, outbox=outbox), bus):
            first, second = await answering.next(), await answering.next()
            bus.publish_event(EventKind.ALARM, await alarm(store, rule="third"))
            third = await answering.next()
    assert [r.json()["data"]["rule"] for r in (first, second, third)] == ["entrapment", "second", "third"]
    assert not outbox.exists()  # sent: nothing is kept twice
