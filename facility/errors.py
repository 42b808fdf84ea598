"""The project's one exception tree: every error a caller may act on is one of four kinds.

```
FacilityError            the root: anything below is expected and has a message for a person
├── NotFound             no such record (alarm, task, plan, step, device, point, attachment)   → 404
├── Conflict             the record's state does not allow the action (ack a closed alarm)     → 409
├── Refused              the action is understood and not allowed (a write off the allow-list,
│                        a file of a type not taken, a plan step out of order)                → 403/415
└── Invalid              input that cannot be used, naming the field it is about               → 422
    └── ConfigError      a file that cannot be used, naming the file and line (facility.yamlfile)
Unavailable              a store or peer that is down for now: retry later                      → 503
```

Why one tree: callers catch a branch, not a module's private class, so "not found" is
signalled one way and the API maps each branch once (api/errors.py) instead of every route
parsing a message. The rule engine's outcomes drop an outcome only on `Conflict` or `Refused`
(the system said no, for a reason it logs); any other exception is a bug or an outage and the
outcome is kept and retried, so that a bug cannot lose an alarm.

`Unavailable` is outside `FacilityError` on purpose: it is not an answer about the request but
about the moment, and code that catches `FacilityError` to report a refusal must not swallow an
outage.
"""

from __future__ import annotations

from collections.abc import Sequence


class FacilityError(Exception):
    """An expected error with a message for the person who asked."""


class NotFound(FacilityError, LookupError):
    """No such record; the message names what was looked for."""


class Conflict(FacilityError):
    """The record exists, but its state does not allow the action; the message says why."""


class Refused(FacilityError):
    """The action is not allowed, whatever the state; `status` is the HTTP answer that says so
    (403 for a policy, 415 for a file type)."""

    status = 403


class Invalid(FacilityError, ValueError):
    """Input that cannot be used. `field` names it (a body field, a query parameter, a YAML path),
    `where` says where the field is: body, query or path. `messages` are the problems found in it,
    each said on its own (a scenario definition with three bad steps); the message joins them."""

    def __init__(self, message: str, *, field: str = "", where: str = "body", messages: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.where = where
        self.messages = tuple(messages) or (message,)

    @classmethod
    def each(cls, messages: Sequence[str], *, field: str, where: str = "body") -> Invalid:
        """One error for several problems with one field."""
        return cls("\n".join(messages), field=field, where=where, messages=messages)


class Unavailable(Exception):
    """A store or peer is down for now; the caller may retry, and nothing was done."""
