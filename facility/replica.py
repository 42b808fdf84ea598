"""Copies of an estate, for benchmarks: the demo's devices many times over, each copy on its own
ports and topics, so that a load can be raised without writing a site file for it."""

from __future__ import annotations

from facility.site import Site

REPLICA_PORT_STRIDE = 100  # copy k of an estate serves its Modbus TCP endpoints k*100 ports higher


def replicate(site: Site, copies: int) -> Site:
    """The site with its devices repeated `copies` times, for benchmarks.

    Copy k (from 2) gets ids suffixed `-rk`, Modbus TCP ports moved up by (k-1)*100 and MQTT
    topics prefixed `rk/`. Devices on serial lines are not repeated: a serial port is one cable.
    """
    if copies <= 1:
        return site
    taken = {d.modbus.port for d in site.devices if d.modbus and not d.modbus.serial}
    devices = list(site.devices)
    for k in range(2, copies + 1):
        for device in site.devices:
            update: dict[str, object] = {"id": f"{device.id}-r{k}", "name": f"{device.name or device.id} #{k}"}
            if device.modbus:
                if device.modbus.serial:
                    continue
                port = device.modbus.port + (k - 1) * REPLICA_PORT_STRIDE
                if port in taken or port > 65535:
                    raise ValueError(f"copy {k} of {device.id} would use port {port}, taken or out of range")
                update["modbus"] = device.modbus.model_copy(update={"port": port})
            if device.mqtt:
                status = f"r{k}/{device.mqtt.status}"
                update["mqtt"] = device.mqtt.model_copy(
                    update={"topic": f"r{k}/{device.mqtt.topic}", "status_topic": status}
                )
            devices.append(device.model_copy(update=update))
        taken |= {d.modbus.port for d in devices if d.modbus and not d.modbus.serial}
    return site.model_copy(update={"devices": devices})
