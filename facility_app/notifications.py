"""The notifier as the runtime starts it: alarm, task and plan events to MQTT and webhooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from facility.aio import cancel_all
from facility.bus import Bus
from facility.mqtt import MqttClient
from facility.readiness import Readiness
from facility.site import Site
from facility.store.ops import OpsStore
from rules.notify import Notifier

log = logging.getLogger(__name__)

NOTIFY_FLUSH_S = 3.0  # of the drain at a stop (shutdown.STOP_S), queued webhook deliveries may take this much


async def start_notifier(
    site: Site,
    bus: Bus,
    ops: OpsStore,
    closers: list[Callable[[], Awaitable[None]]],
    readiness: Readiness,
    outbox: Path,
) -> Callable[[], Awaitable[None]]:
    """Alarm, task and plan events to MQTT (a connection of its own) and the site's webhooks.
    Started before the rules, so that it hears of the first alarm; stopped after them, once what
    is queued has gone out (or become a dead letter) or, after NOTIFY_FLUSH_S, been kept in
    `outbox` for the next start. Returns its stop."""
    publish = None
    if site.notifications.mqtt:
        client = MqttClient.of(
            site.broker,
            client_id=f"facility-events-{site.site.id}",  # a kept session: QoS 1 events wait out a reconnect
            name="events",
        )
        await client.start(required=False)  # events wait in paho (QoS 1) until the broker answers
        readiness.add(client)
        closers.append(client.stop)
        publish = client.publish
    notifier = Notifier(site, ops, publish, outbox=outbox)
    task = asyncio.create_task(notifier.run(bus), name="notifications")
    await notifier.subscribed.wait()

    async def stop() -> None:
        try:
            await asyncio.wait_for(notifier.flush(), NOTIFY_FLUSH_S)
        except TimeoutError:
            log.warning("webhook notifications still queued after %g s at shutdown", NOTIFY_FLUSH_S)
        await cancel_all([task])

    closers.append(lambda: cancel_all([task]))  # when the drain was cut short before stop()
    return stop
