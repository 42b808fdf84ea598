"""The broker's ACL for a site: what each MQTT user may read and write, rendered from the site file.

Mosquitto refuses whatever its `acl_file` does not grant. Device topics are free-form in the site
file, so the ACL is generated from it (`facility broker acl SITE`) rather than kept by hand beside
it, where the two would drift apart:

- the service (the site's `broker.username`: gateway, rule engine, notifier) reads every
  device's topic and status topic, and reads and writes `facility/v1/#` (readings, events);
- each MQTT device has a user of its own, named by its id, that may write its topic and its
  status topic (its birth and last will) and read nothing: not another device's topic, not the
  events under `facility/v1/events/`.

A device cannot be given a topic that would widen its grants: wildcards are refused by the site
file already, and here topics under `facility/v1/` (the service's own), topics shared by two
devices (each could publish as the other) and topics that would not survive the ACL file's
line syntax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from facility.site import Site

SERVICE_TOPICS = "facility/v1/#"
_SERVICE_PREFIX = SERVICE_TOPICS.removesuffix("#")


class AclError(ValueError):
    """The site cannot be given a safe ACL; the message names the device and says why."""


@dataclass(frozen=True)
class Grant:
    access: Literal["read", "write", "readwrite"]  # as Mosquitto spells it
    topic: str


def acl_users(site: Site) -> dict[str, list[Grant]]:
    """Every user of the site's broker and what it may do: the service first, then one user per
    MQTT device (its id), in the site file's order."""
    service = site.broker.username
    if not service:
        raise AclError("broker.username is not set: the service needs a user of its own on the broker")
    if any(c.isspace() for c in service) or ":" in service:
        raise AclError(f"broker.username {service!r}: a user name on the broker has no spaces and no colon")
    users: dict[str, list[Grant]] = {service: []}
    owner: dict[str, str] = {}  # topic -> the device whose it is
    for device in site.devices:
        if device.mqtt is None:
            continue
        if device.id == service:
            raise AclError(f"device {device.id}: its user would be the service's ({service}); rename one")
        topics = [device.mqtt.topic, device.mqtt.status]
        for topic in topics:
            if topic != topic.strip() or any(c in topic for c in "\n\r\0"):
                # Mosquitto reads the ACL line by line and trims the ends: such a topic would be
                # granted as another.
                raise AclError(
                    f"device {device.id}: topic {topic!r} cannot be written in an ACL (line break, or space at an end)"
                )
            if topic.startswith(_SERVICE_PREFIX):
                raise AclError(f"device {device.id}: topic {topic!r} is under {_SERVICE_PREFIX}, the service's own")
            other = owner.setdefault(topic, device.id)
            if other != device.id:
                raise AclError(
                    f"devices {other} and {device.id} share topic {topic!r}: each could publish as the other"
                )
        users[service] += [Grant("read", t) for t in topics]
        users[device.id] = [Grant("write", t) for t in topics]
    users[service].append(Grant("readwrite", SERVICE_TOPICS))
    return users


def render_acl(site: Site) -> str:
    """The Mosquitto `acl_file` for the site (see the module's docstring for what it grants)."""
    service = site.broker.username
    lines = [
        f"# Mosquitto ACL of site {site.site.id}, rendered from its site file by `facility broker acl`:",
        "# render it again whenever a device is added, removed or given another topic. Mosquitto",
        "# refuses what is not granted here; a user without a section can do nothing.",
    ]
    for user, grants in acl_users(site).items():
        what = "the service: reads every device, owns facility/v1/" if user == service else "a device: its own topics"
        lines += ["", f"# {what}", f"user {user}", *(f"topic {g.access} {g.topic}" for g in grants)]
    return "\n".join(lines) + "\n"
