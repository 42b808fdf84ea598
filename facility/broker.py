"""The demo's own MQTT broker: a Mosquitto child process when the binary is on PATH, else amqtt.

amqtt runs in-process and handles about 3,000 messages/s, enough for the demo estate; production
sites run their own broker and pass its URL.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from facility.netutil import free_port, wait_for_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


class EmbeddedBroker:
    def __init__(self, kind: Literal["mosquitto", "amqtt"] | None = None) -> None:
        self.port = free_port(HOST)
        self.kind = kind or ("mosquitto" if shutil.which("mosquitto") else "amqtt")
        self._process: asyncio.subprocess.Process | None = None
        self._amqtt: object | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    async def start(self) -> None:
        if self.kind == "mosquitto":
            self._dir = tempfile.TemporaryDirectory(prefix="facility-broker-")
            conf = Path(self._dir.name) / "mosquitto.conf"
            conf.write_text(f"listener {self.port} {HOST}\nallow_anonymous true\npersistence false\n")
            self._process = await asyncio.create_subprocess_exec(
                shutil.which("mosquitto") or "mosquitto",
                "-c",
                str(conf),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        else:
            from amqtt.broker import Broker

            broker = Broker(
                {
                    "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{self.port}"}},
                    "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
                }
            )
            await broker.start()
            self._amqtt = broker
        await wait_for_port(HOST, self.port, timeout=10)
        log.info("embedded MQTT broker (%s) on %s", self.kind, self.url)

    async def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            await asyncio.wait_for(self._process.wait(), 10)
        if self._amqtt is not None:
            await self._amqtt.shutdown()  # type: ignore[attr-defined]
        if self._dir is not None:
            self._dir.cleanup()
