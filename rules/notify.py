"""Notifications: bus events out to MQTT and to webhooks (plain JSON, WeCom and DingTalk group robots).

MQTT gets every alarm, task, plan, escalation and flood event under
`facility/v1/events/<site>/<kind>` at QoS 1 (paho keeps QoS 1 messages across a reconnect).
Webhooks get alarms at or above their `min_priority`, and every escalation.

An alarm raised while the ops store is down is announced first as provisional (`recorded: false`,
no id) and again once recorded: what people were told of the provisional alarm (known by its rule
and device, as at most one alarm is open per rule and device) passes to the recorded one, so that
they are not told twice. An alarm whose text grew while active (`spread: true`: a second zone in
fire) is told again, with a line saying so: those called out must hear that the fire spread.

Each webhook has its own queue and sender task, so a receiver that is slow or down delays only
itself: the bus queue is drained at once and the other receivers are served as usual. At a stop,
what is still queued (and the delivery under way) is written to an outbox file on local disk, and
sent first at the next start. A delivery that fails is tried again with a growing pause a
bounded number of times, then kept as a dead letter in the ops store. Webhook URLs (robot keys
sit in them) and secrets are never logged: logs name the webhook by its `name`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from facility.aio import cancel_all
from facility.bus import Bus, Event
from facility.model import Priority, now_ns
from facility.records import DeadLetter
from facility.site import Site, Webhook
from facility.store.ops import OpsStore
from facility.vocabulary import EventKind
from facility.words import ALARM_STATES, PRIORITIES

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], None]  # MqttClient.publish: topic, payload, qos, retain

KINDS = frozenset({EventKind.ALARM, EventKind.TASK, EventKind.PLAN, EventKind.ESCALATION, EventKind.FLOOD})
RANK = {p.value: i for i, p in enumerate(Priority)}  # emergency 0 ... low 3
KIND_TEXT = {EventKind.ALARM: ("报警", "Alarm"), EventKind.ESCALATION: ("升级", "Escalation")}


class DeliveryFailed(Exception):
    """One attempt that did not reach the receiver; `retry` says whether another attempt may succeed."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason, self.retry = reason, retry


class Notifier:
    def __init__(
        self,
        site: Site,
        store: OpsStore,
        publish: Publish | None,
        *,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: float = 1.0,
        outbox: Path | None = None,
    ) -> None:
        """`attempts` per webhook delivery, with pauses of backoff, 2x backoff, 4x backoff ... between.
        `outbox`: the file that keeps undelivered webhook notifications across a stop."""
        self._outbox = outbox
        self._sending: dict[str, Event] = {}  # webhook name -> the delivery under way
        self._site = site
        self._store = store
        self._publish = publish if site.notifications.mqtt else None
        self._timeout, self._attempts, self._backoff = timeout, attempts, backoff
        self._zone = ZoneInfo(site.site.timezone)
        # alarm id, or ("provisional", rule, device) before it has one -> the (state, title) the webhooks last heard of
        self._told: dict[Any, Any] = {}
        self._outboxes: list[tuple[Webhook, asyncio.Queue[Event]]] = [
            (hook, asyncio.Queue()) for hook in site.notifications.webhooks
        ]
        self.subscribed = asyncio.Event()  # set once `run` hears the bus: events published after are handled
        for name in ("httpx", "httpcore"):  # they log request URLs at INFO and DEBUG, robot keys included
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))

    async def run(self, bus: Bus) -> None:
        self._load_outbox()
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            senders = [
                asyncio.create_task(self._send_all(hook, queue, client), name=f"webhook {hook.name}")
                for hook, queue in self._outboxes
            ]
            try:
                with bus.subscribe() as events:
                    self.subscribed.set()
                    while True:
                        self.handle(await events.get())
            finally:
                self.subscribed.clear()
                await cancel_all(senders)
                self._keep_unsent()

    def _keep_unsent(self) -> None:
        """Write what the webhooks were not sent to the outbox (temp file, fsync, rename), oldest first."""
        unsent: list[dict[str, Any]] = []
        for hook, queue in self._outboxes:
            events = [self._sending.pop(hook.name)] if hook.name in self._sending else []
            while not queue.empty():
                events.append(queue.get_nowait())
                queue.task_done()
            unsent += [{"hook": hook.name, "id": e.id, "kind": e.kind, "data": e.data} for e in events]
        if self._outbox is None:
            if unsent:
                log.error("stopping with %d webhook notifications not sent and no outbox to keep them", len(unsent))
            return
        if not unsent:
            return
        self._outbox.parent.mkdir(parents=True, exist_ok=True)
        temp = self._outbox.with_suffix(".tmp")
        with open(temp, "wb") as f:
            f.write(_json(unsent))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self._outbox)
        log.warning("stopping: %d webhook notifications not yet sent kept in %s", len(unsent), self._outbox)

    def _load_outbox(self) -> None:
        """Queue what an earlier run could not send, before anything new."""
        if self._outbox is None or not self._outbox.exists():
            return
        try:
            unsent = json.loads(self._outbox.read_bytes())
        except (OSError, ValueError) as exc:
            log.error("cannot read the notification outbox %s (%s); left for a person to look at", self._outbox, exc)
            return
        queues = {hook.name: queue for hook, queue in self._outboxes}
        kept = 0
        for item in unsent:
            queue = queues.get(item.get("hook"))
            if queue is None:
                log.warning(
                    "notification outbox: no webhook %r any more; its %s event is dropped",
                    item.get("hook"),
                    item.get("kind"),
                )
                continue
            queue.put_nowait(Event(int(item["id"]), EventKind(str(item["kind"])), item["data"]))
            kept += 1
        self._outbox.unlink()
        log.info("%d webhook notifications from the last run queued again", kept)

    def handle(self, event: Event) -> None:
        """Publish to MQTT and queue for the webhooks that want it; never waits."""
        if event.kind not in KINDS:
            return
        if self._publish is not None:
            topic = f"facility/v1/events/{self._site.site.id}/{event.kind}"
            try:
                self._publish(topic, _json(event.data), 1, False)
            except Exception:
                log.exception("cannot publish %s event %d to MQTT", event.kind, event.id)
        if event.kind == EventKind.ALARM and not self._news(event.data):
            return  # a comment or a flag on an alarm: people heard of it already
        for hook, queue in self._outboxes:
            if wanted(hook, event):
                queue.put_nowait(event)

    def _news(self, alarm: dict[str, Any]) -> bool:
        """Whether this alarm event moves the alarm to a state people have not been told of, or,
        for a spread, gives it a text they have not heard (any other event's text is the one they
        heard with its state: a recorded alarm replacing its provisional one may carry an older)."""
        state, title = alarm.get("state"), json.dumps(alarm.get("title"), sort_keys=True)
        provisional = ("provisional", alarm.get("rule"), alarm.get("device"))
        if alarm.get("recorded") is False:
            key: Any = provisional
        else:
            key = alarm.get("id")
            if provisional in self._told:  # recorded now: people heard of it as provisional
                self._told[key] = self._told.pop(provisional)
        told = self._told.get(key)
        if told is not None and told[1 if alarm.get("spread") else 0] == (title if alarm.get("spread") else state):
            return False
        if state == "normal":
            self._told.pop(key, None)  # closed: nothing more will come of it
        else:
            self._told[key] = (state, title)
        return True

    async def flush(self) -> None:
        """Return once every queued webhook delivery has been made or kept as a dead letter, e.g.
        before shutting down (with a timeout of the caller's: a receiver may be down)."""
        await asyncio.gather(*(queue.join() for _, queue in self._outboxes))

    async def _send_all(self, hook: Webhook, queue: asyncio.Queue[Event], client: httpx.AsyncClient) -> None:
        while True:
            event = await queue.get()
            self._sending[hook.name] = event  # cancelled in the middle, it stays here for the outbox
            try:
                await self._send(hook, client, event)
            except Exception:  # a bug must not silence this webhook for good
                log.exception("webhook %s: cannot send %s event %d", hook.name, event.kind, event.id)
            del self._sending[hook.name]
            queue.task_done()

    async def _send(self, hook: Webhook, client: httpx.AsyncClient, event: Event) -> None:
        body = webhook_body(hook, event, self._site, self._zone)
        try:
            await self._deliver(hook, client, body)
        except DeliveryFailed as exc:
            log.error("webhook %s: %s event %d kept as a dead letter: %s", hook.name, event.kind, event.id, exc)
            letter = DeadLetter(now_ns(), "webhook", hook.name, exc.reason, _json(body).decode())
            try:
                await self._store.letters.add([letter])
            except Exception:
                log.exception(
                    "webhook %s: cannot store the dead letter of %s event %d", hook.name, event.kind, event.id
                )

    async def _deliver(self, hook: Webhook, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        """Post with retries; DeliveryFailed once the attempts are spent or a retry cannot help."""
        for attempt in range(1, self._attempts + 1):
            try:
                await _post(hook, client, body)
                return
            except DeliveryFailed as exc:
                if not exc.retry or attempt == self._attempts:
                    raise DeliveryFailed(f"{exc.reason} (attempt {attempt} of {self._attempts})", retry=False) from None
                pause = self._backoff * 2 ** (attempt - 1)
                log.warning("webhook %s: attempt %d failed (%s); again in %.1fs", hook.name, attempt, exc, pause)
                await asyncio.sleep(pause)


def wanted(hook: Webhook, event: Event) -> bool:
    """Alarms at or above the webhook's priority, and every escalation. Alarms that are shelved,
    suppressed by design or out of service are not announced to people (ISA-18.2); MQTT still has them."""
    if event.kind == EventKind.ESCALATION:
        return True
    data = event.data
    if event.kind != EventKind.ALARM or any(data.get(k) for k in ("shelved", "suppressed", "out_of_service")):
        return False
    return RANK.get(data.get("priority", ""), len(RANK)) <= RANK[hook.min_priority]


async def _post(hook: Webhook, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    content = _json(body)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    params: dict[str, str] = {}
    secret = _secret(hook) if hook.format != "wecom" else None  # WeCom robots are not signed: their key is the URL
    if secret is not None and hook.format == "dingtalk":
        params = _dingtalk_signature(secret)
    elif secret is not None and hook.format == "json":
        headers["X-Facility-Signature"] = "sha256=" + hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
    try:
        url = httpx.URL(hook.url).copy_merge_params(params)  # `params=` would drop the robot's access token
        response = await client.post(url, content=content, headers=headers)
    except httpx.TransportError as exc:  # connection refused, timeouts, ...
        detail = _scrub(str(exc), hook, secret)
        raise DeliveryFailed(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__, retry=True) from None
    if response.status_code >= 300:
        retry = response.status_code >= 500 or response.status_code in (408, 429)
        raise DeliveryFailed(f"HTTP {response.status_code}", retry=retry)
    if hook.format in ("wecom", "dingtalk"):  # robots answer 200 and put failures in the body
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryFailed("the robot's answer is not JSON", retry=True) from None
        if not isinstance(answer, dict):
            answer = {"errcode": None, "errmsg": "unexpected answer"}
        if answer.get("errcode", 0) != 0:  # e.g. rate limited: another attempt may pass
            raise DeliveryFailed(f"robot refused: errcode {answer['errcode']}: {answer.get('errmsg', '')}", retry=True)


def _secret(hook: Webhook) -> str | None:
    if hook.secret_env is None:
        return None
    secret = os.environ.get(hook.secret_env)
    if not secret:
        raise DeliveryFailed(f"environment variable {hook.secret_env} (the signing secret) is not set", retry=False)
    return secret


def _dingtalk_signature(secret: str) -> dict[str, str]:
    """DingTalk's robot signature: HMAC-SHA256 of "<ms>\\n<secret>" keyed by the secret, base64."""
    ms = str(int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{ms}\n{secret}".encode(), hashlib.sha256).digest()
    return {"timestamp": ms, "sign": base64.b64encode(digest).decode()}


def _scrub(text: str, hook: Webhook, secret: str | None) -> str:
    """`text` without the webhook's URL (robot keys sit in its query) or the secret."""
    for hidden in (hook.url, httpx.URL(hook.url).query.decode(), secret):
        if hidden:
            text = text.replace(hidden, "***")
    return text


def webhook_body(hook: Webhook, event: Event, site: Site, zone: ZoneInfo) -> dict[str, Any]:
    if hook.format == "json":
        return {"site": site.site.id, "kind": event.kind, "data": event.data}
    title, text = markdown(event, site, zone)
    if hook.format == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


def markdown(event: Event, site: Site, zone: ZoneInfo) -> tuple[str, str]:
    """(short title, message) for a group robot: priority, title in Chinese and English, state,
    device with its name and building, and the time in the site's time zone."""
    data = event.data
    kind_zh, kind_en = KIND_TEXT.get(event.kind, (event.kind, event.kind))
    priority = str(data.get("priority", ""))
    title_zh, title_en = _both(data.get("title"))
    named = PRIORITIES.get(priority)
    head = f"{kind_zh} {kind_en}" + (f" · {named.zh} {priority}" if named else f" · {priority}" if priority else "")
    lines = [f"### 【{head}】{title_zh}", f"**{title_en}**" if title_en and title_en != title_zh else ""]
    if data.get("spread"):
        lines.append("> 报警部位增加，请按新部位处置 More points in alarm: act on every one")
    if data.get("state") in ALARM_STATES:  # the desk's and the reports' words for the state
        zh, en = ALARM_STATES[data["state"]].zh, ALARM_STATES[data["state"]].en
        lines.append(f"> 状态 State: {zh} {en}")
    if data.get("device"):
        lines.append(f"> 设备 Device: {_device(site, str(data['device']))}")
    # An escalation is about how long the alarm has waited: show when it was raised.
    keys = ("raised_at",) if event.kind == EventKind.ESCALATION else ("changed_at", "ts", "raised_at")
    ts = next((data[k] for k in keys if isinstance(data.get(k), int)), None)
    if ts is not None:
        label = "报警时间 Raised" if event.kind == EventKind.ESCALATION else "时间 Time"
        lines.append(f"> {label}: {datetime.fromtimestamp(ts / 1e9, zone):%Y-%m-%d %H:%M:%S} ({zone.key})")
    if event.kind == EventKind.ESCALATION:
        lines.append("> 超时未确认，请立即处理 Not acknowledged in time: act now")
    message_zh, message_en = _both(data.get("message"))
    if message_zh or message_en:
        lines.append(f"> {message_zh}  \n> {message_en}")
    if data.get("recorded") is False:
        lines.append("> 尚未入库（运维数据库无响应），恢复后自动补录 Not yet recorded (the ops store does not answer)")
    short = f"[{priority or kind_en}] {title_zh}"
    return short, "\n".join(line for line in lines if line)


def _both(text: Any) -> tuple[str, str]:
    if isinstance(text, dict):
        return str(text.get("zh", "")), str(text.get("en", ""))
    return (str(text), str(text)) if text else ("", "")


def _device(site: Site, device_id: str) -> str:
    try:
        device = site.device(device_id)
    except KeyError:
        return device_id
    where = " ".join(p for p in (device.location.building, device.location.floor, device.location.room) if p)
    named = f"{device.name} ({device.id})" if device.name else device.id
    return f"{named}, {where}" if where else named


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode()
