"""Readings between processes: what an estate's gateway publishes upstream and what the centre's
writers and rule workers read, on `facility/v1/readings/<site>/<device>` at QoS 1.

One message per device per batch: the topic names site and device, so a subscriber chooses its
estates by topic (and a broker's ACL grants an estate's gateway its own topics only), and the body
is a MessagePack array of `[point, value, quality, ts]`. MessagePack keeps bool, int, float and
text apart, as the spool does, at about a third of JSON's size for a pump's readings;
`bench/scale.py` measures what encoding and decoding cost.

A device's status (online or offline, as it or its poller says) travels beside its readings on
`facility/v1/status/<site>/<device>`, retained, as `[online, ts]`: a centre that subscribes, or
comes back, learns at once what the estate knows of each device.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from facility.model import DeviceStatus, Quality, Reading

READINGS_TOPIC = "facility/v1/readings"
STATUS_TOPIC = "facility/v1/status"
_QUALITY = {q.value: q for q in Quality}
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[tuple[str, bool | int | float | str | None, str, int]]).decode
_decode_status = msgspec.msgpack.Decoder(tuple[bool, int]).decode


class WireError(ValueError):
    """A message on a readings topic that is not what a gateway publishes: named in a dead letter."""


def readings_topic(site: str, device: str) -> str:
    return f"{READINGS_TOPIC}/{site}/{device}"


def readings_filter(site: str) -> str:
    """The subscription that takes in every device of one estate."""
    return f"{READINGS_TOPIC}/{site}/+"


def status_topic(site: str, device: str) -> str:
    return f"{STATUS_TOPIC}/{site}/{device}"


def status_filter(site: str) -> str:
    """The subscription that takes in the status of every device of one estate."""
    return f"{STATUS_TOPIC}/{site}/+"


def encode_status(status: DeviceStatus) -> bytes:
    return _encode((status.online, status.ts))


def decode_status(device: str, payload: bytes | bytearray) -> DeviceStatus:
    """The status a message carries; WireError saying why when it cannot be read."""
    try:
        online, ts = _decode_status(payload)
    except msgspec.DecodeError as exc:
        raise WireError(f"not a status message: {exc}") from None
    return DeviceStatus(device, online, ts)


def by_device(readings: Iterable[Reading]) -> dict[str, list[Reading]]:
    """A batch cut into one list per device, in the order they came: one message each."""
    devices: dict[str, list[Reading]] = {}
    for r in readings:
        devices.setdefault(r.device, []).append(r)
    return devices


def encode(readings: Sequence[Reading]) -> bytes:
    """The body of one device's message (the device is in the topic)."""
    return _encode([(r.point, r.value, r.quality._value_, r.ts) for r in readings])


def device_of(topic: str, site: str, kind: str = READINGS_TOPIC) -> str:
    """The device a readings (or, with `kind` STATUS_TOPIC, status) topic of `site` names;
    WireError for any other topic."""
    prefix = f"{kind}/{site}/"
    device = topic[len(prefix) :] if topic.startswith(prefix) else ""
    if not device or "/" in device:
        raise WireError(f"not a {kind.rsplit('/', 1)[1]} topic of site {site!r}")
    return device


def decode(device: str, payload: bytes | bytearray) -> list[Reading]:
    """The readings of one message; WireError saying why when it cannot be read."""
    try:
        rows = _decode(payload)
        return [Reading(device, point, value, _QUALITY[q], ts) for point, value, q, ts in rows]
    except msgspec.DecodeError as exc:
        raise WireError(f"not a readings message: {exc}") from None
    except KeyError as exc:
        raise WireError(f"unknown quality {exc.args[0]!r}") from None
