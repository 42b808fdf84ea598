"""Copies of an estate, for benchmarks: the demo's devices many times over, each copy on its own
ports and topics, so that a load can be raised without writing a site file for it.

Each copy's Modbus TCP endpoints get ports handed out one after another above every port the
estate uses, rather than the estate's own ports moved by a fixed offset per copy: an offset
collides with the estate as soon as its ports span it, and runs past 65535 long before the free
ports do. Two devices with one unit id on one endpoint are a simulator that cannot start (pymodbus:
"device_id: 1 in multiple SimDevice entries") and a gateway that reads one device for two, so no
copy may share an endpoint with the estate or another copy. What cannot be given a port is a
ValueError naming the copy and the device, which `--scale` reports as a usage error.
"""

from __future__ import annotations

from facility.site import Device, Site

MAX_PORT = 65535
FIRST_UNPRIVILEGED_PORT = 1024  # below it, a simulator not run as root cannot listen


def replicate(site: Site, copies: int) -> Site:
    """The site with its devices repeated `copies` times, for benchmarks.

    Copy k (from 2) gets ids suffixed `-rk`, MQTT topics prefixed `rk/` and, for each Modbus TCP
    endpoint of the estate, a port that no device of the estate and no other copy uses (`_Ports`);
    hosts and unit ids stay, so devices that share an endpoint (one gateway) in the estate share
    one in each copy. The ports depend only on the site and k, so that `facility sim run --scale N`
    and `facility run --scale N` agree across processes, and copy k is the same whatever N is.
    Devices on serial lines are not repeated: a serial port is one cable.
    """
    if copies <= 1:
        return site
    ports = _Ports(site, copies)
    devices = list(site.devices)
    for k in range(2, copies + 1):
        devices.extend(_copy(site, k, ports))
    return site.model_copy(update={"devices": devices})


def _copy(site: Site, k: int, ports: _Ports) -> list[Device]:
    """Copy k of the estate's devices, serial ones left out, each estate endpoint given one new port."""
    moved: dict[str, int] = {}  # endpoint in the estate -> its port in this copy
    copied = []
    for device in site.devices:
        update: dict[str, object] = {"id": f"{device.id}-r{k}", "name": f"{device.name or device.id} #{k}"}
        if device.modbus:
            if device.modbus.serial:
                continue
            endpoint = device.modbus.endpoint
            if endpoint not in moved:
                moved[endpoint] = ports.take(k, device.id)
            update["modbus"] = device.modbus.model_copy(update={"port": moved[endpoint]})
        if device.mqtt:
            status = f"r{k}/{device.mqtt.status}"
            update["mqtt"] = device.mqtt.model_copy(
                update={"topic": f"r{k}/{device.mqtt.topic}", "status_topic": status}
            )
        copied.append(device.model_copy(update=update))
    return copied


class _Ports:
    """Ports for the copies' Modbus TCP endpoints, handed out in order from just above the estate's
    highest port (and never below 1024), so that none is a port of the estate or of another copy,
    whatever host either is on. Only ports above the estate's are used: below them may lie the ports of
    the machine's other services (a broker's 1883, the API's 8000), which a copy must not take."""

    def __init__(self, site: Site, copies: int) -> None:
        tcp = [d.modbus for d in site.devices if d.modbus and not d.modbus.serial]
        self._first = max([FIRST_UNPRIVILEGED_PORT - 1, *(b.port for b in tcp)]) + 1
        self._next = self._first
        self._per_copy = len({b.endpoint for b in tcp})
        self._copies = copies

    def take(self, k: int, device_id: str) -> int:
        """The next free port, for copy k's endpoint of `device_id`; ValueError when none is left."""
        if self._next > MAX_PORT:
            fit = 1 + (MAX_PORT - self._first + 1) // self._per_copy
            raise ValueError(
                f"copy {k} of {self._copies} has no Modbus TCP port left for device {device_id!r}: each copy "
                f"takes {self._per_copy} ports (one per endpoint of the estate), handed out from "
                f"{self._first} to {MAX_PORT}, so at most {fit} copies of this estate fit"
            )
        port = self._next
        self._next += 1
        return port
