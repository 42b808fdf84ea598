"""Writes from a central desk to an estate's gateway in another process: the request and its answer
on MQTT, and the errors they carry both ways.

The centre publishes a `WriteRequest` on `facility/v1/writes/<site>/requests` at QoS 1; the estate's
gateway, the one door to its buses, checks the allow-list and the range itself, writes, and
answers on the requester's own `facility/v1/writes/<site>/answers/<requester>`. A `WriteError` the
gateway raised travels as its class name and message and is raised again at the centre, so the API
answers a central write with the status it gives a local one (403, 404, 422, 502).

A request carries when it stops being wanted (`expires_ns`, the centre's answer wait): the
gateway refuses one that reaches it later, so that a set point a duty officer gave up on is
never written minutes afterwards, when a cut uplink comes back. The clocks of centre and estate
must agree to within a second or two (NTP), as the readings' times already need.
"""

from __future__ import annotations

import msgspec

from facility.model import Value
from facility.writes import (
    AuditUnavailable,
    BadValue,
    DeviceFailed,
    DeviceOffline,
    DeviceRefused,
    NotAllowed,
    NotConfirmed,
    UnknownTarget,
    WriteError,
)

WRITES_TOPIC = "facility/v1/writes"
_ERRORS: dict[str, type[WriteError]] = {
    cls.__name__: cls
    for cls in (UnknownTarget, NotAllowed, BadValue, DeviceFailed, DeviceOffline, NotConfirmed, AuditUnavailable)
}


class RequestExpired(DeviceFailed):
    """The request reached the estate's gateway after the centre had stopped waiting for it."""


class WriteRequest(msgspec.Struct, frozen=True):
    id: str
    device: str
    point: str
    value: bool | int | float | str
    actor: str  # who asked, at the centre: the estate's audit log names them too
    source: str
    expires_ns: int  # UTC ns after which the gateway must not write it
    answer_to: str  # the requester's answers topic


class WriteAnswer(msgspec.Struct, frozen=True):
    id: str
    value: bool | int | float | str | None = None  # the value read back, when the write was done
    error: str = ""  # why it was not, as the gateway said it
    kind: str = ""  # the WriteError's class name
    code: int | None = None  # a Modbus exception code (DeviceRefused)


def requests_topic(site: str) -> str:
    return f"{WRITES_TOPIC}/{site}/requests"


def answers_topic(site: str, requester: str) -> str:
    return f"{WRITES_TOPIC}/{site}/answers/{requester}"


def answer_of(request: WriteRequest, done: Value | WriteError) -> WriteAnswer:
    """The answer to a request: the confirmed value, or the error that refused or failed it."""
    if not isinstance(done, WriteError):
        return WriteAnswer(request.id, value=done)
    code = done.code if isinstance(done, DeviceRefused) else None
    return WriteAnswer(request.id, error=str(done), kind=type(done).__name__, code=code)


def raise_for(answer: WriteAnswer) -> Value:
    """The confirmed value of an answer, or the error it carries raised again."""
    if not answer.kind:
        return answer.value
    if answer.kind == DeviceRefused.__name__:
        raise DeviceRefused(answer.error, answer.code or 0)
    if answer.kind == RequestExpired.__name__:
        raise RequestExpired(answer.error)
    raise _ERRORS.get(answer.kind, DeviceFailed)(answer.error)


encode = msgspec.json.Encoder().encode
decode_request = msgspec.json.Decoder(WriteRequest).decode
decode_answer = msgspec.json.Decoder(WriteAnswer).decode
