"""An estate's gateway sending its readings to the centre: the telemetry writer's store, when the
writers run elsewhere.

The uplink is a `TelemetryStore` whose write publishes the batch on
`facility/v1/readings/<site>/<device>` (facility.readings_wire) at QoS 1 and returns once the
broker has acknowledged every message. So the writer's promises carry over unchanged: while the
uplink is cut a write fails at once, the batch goes to the disk spool and the writer retries;
once the broker answers, the spool is replayed with its alarm lane first, so that what the rules
judge reaches the centre before the routine backlog. An MQTT message the gateway read from a
device is acknowledged only once its readings are with the centre's broker or on disk.

Writes block on the broker's acknowledgements, so they run in the writer's worker thread
(`quick_writes` False) and paho runs its own network thread to receive them. That is the thread
the in-process ingest avoids (docs/architecture.md): an estate publishes hundreds of readings a
second, not the centre's tens of thousands, and the loop stays free for polling and local rules.
A batch the broker did not acknowledge in time is spooled and sent again: the centre's stores key
on (device, point, time), so a message that arrives twice is stored once.

Device status goes up too (`send_status`), retained on `facility/v1/status/<site>/<device>`, and
not through the spool: only the latest status of a device matters, so the uplink keeps each
device's latest and publishes them all again whenever it connects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from facility.model import DeviceStatus, Reading
from facility.mqtt_settings import Broker
from facility.readiness import Figure, PartState, State
from facility.readings_wire import by_device, encode, encode_status, readings_topic, status_topic
from facility.store.telemetry import HistoryUnavailable, Sample, StoreUnavailable

log = logging.getLogger(__name__)

ACK_WAIT_S = 10.0  # a batch the broker has not acknowledged within this is spooled and sent again
MAX_INFLIGHT = 1000  # messages on their way at once: a batch of an estate is a few hundred devices
RECONNECT_S = (1, 2)  # paho's pause in seconds before reconnecting, doubled up to the second


class Uplink:
    """Readings to the centre's broker, acknowledged before `write` returns."""

    quick_writes = False

    def __init__(self, broker: Broker, site: str, client_id: str, ack_wait_s: float = ACK_WAIT_S) -> None:
        self._site = site
        self._ack_wait_s = ack_wait_s
        self.where = f"{broker.host}:{broker.port}"
        self._client = c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if broker.username:
            c.username_pw_set(broker.username, broker.password)
        if broker.tls:
            c.tls_set(ca_certs=broker.ca_file)
        c.max_inflight_messages_set(MAX_INFLIGHT)
        c.reconnect_delay_set(*RECONNECT_S)
        c.on_connect = self._connected
        c.on_disconnect = self._disconnected
        self._host, self._port = broker.host, broker.port
        self._up = threading.Event()
        self._statuses: dict[str, DeviceStatus] = {}  # each device's latest, sent again at each connect
        self._statuses_lock = threading.Lock()  # the loop adds to it; paho's thread reads it on connect
        self._last_success_ns: int | None = None
        self.sent = 0  # readings the broker acknowledged
        self.messages = 0  # ... in this many messages

    def start(self) -> None:
        """Connect in the background: a centre that is away at start is a cut uplink, spooled."""
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def _connected(self, _c: object, _u: object, _f: object, reason: paho.ReasonCode, _p: object) -> None:
        if reason.is_failure:
            log.error("uplink %s refused the connection: %s", self.where, reason)
            return
        log.info("uplink %s connected", self.where)
        with self._statuses_lock:
            latest = list(self._statuses.values())
        for status in latest:
            self._publish_status(status)
        self._up.set()

    def send_status(self, status: DeviceStatus) -> None:
        """Send a device's status to the centre now, or when the uplink is next connected (the bus's
        status handler: it never blocks)."""
        with self._statuses_lock:
            self._statuses[status.device] = status
        if self._up.is_set():
            self._publish_status(status)

    def _publish_status(self, status: DeviceStatus) -> None:
        topic = status_topic(self._site, status.device)
        self._client.publish(topic, encode_status(status), qos=1, retain=True)

    def _disconnected(self, _c: object, _u: object, _f: object, reason: paho.ReasonCode, _p: object) -> None:
        if self._up.is_set():
            log.warning("uplink %s lost (%s); readings go to the spool until it is back", self.where, reason)
        self._up.clear()

    def write(self, readings: Sequence[Reading]) -> None:
        """Publish the batch, one message per device, and wait for every acknowledgement."""
        if not self._up.is_set():
            raise StoreUnavailable(f"uplink {self.where} is not connected")
        sent: list[paho.MQTTMessageInfo] = []
        for device, rows in by_device(readings).items():
            info = self._client.publish(readings_topic(self._site, device), encode(rows), qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise StoreUnavailable(f"uplink {self.where} refused a message: {paho.error_string(info.rc)}")
            sent.append(info)
        deadline = time.monotonic() + self._ack_wait_s
        for info in sent:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _acknowledged(info, remaining):
                raise StoreUnavailable(f"uplink {self.where} did not acknowledge within {self._ack_wait_s:g} s")
        self.sent += len(readings)
        self.messages += len(sent)
        self._last_success_ns = time.time_ns()

    def history(
        self, device: str, point: str, start_ns: int, end_ns: int, bucket_s: float | None = None
    ) -> list[Sample]:
        raise HistoryUnavailable(f"the uplink {self.where}", "this gateway keeps no history: the centre's store has it")

    def prune(self, now_ns: int) -> int:
        return 0  # nothing is kept here but the spool

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def parts(self) -> Iterable[PartState]:
        state = State.UP if self._up.is_set() else State.DOWN
        detail = "" if state is State.UP else "cut off from the centre: readings go to the spool"
        yield PartState(f"uplink {self.where}", "uplink", state, self._last_success_ns, detail)

    def figures(self) -> Iterable[Figure]:
        yield Figure("uplink_readings_total", "readings the centre's broker acknowledged", "counter", self.sent)
        yield Figure("uplink_messages_total", "messages the centre's broker acknowledged", "counter", self.messages)


def _acknowledged(info: paho.MQTTMessageInfo, timeout: float) -> bool:
    """Whether the broker acknowledged the message within `timeout`; a message paho still holds
    (the connection dropped) is sent again by it on reconnect, and by the spool."""
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):  # paho: the message was never queued
        return False
    return info.is_published()
