"""The demo's own MQTT broker: a Mosquitto child process when the binary is on PATH, else amqtt.

amqtt runs in-process and handles about 3,000 messages/s, enough for the demo estate; production
sites run their own broker and pass its URL.

The Mosquitto child stops when, and only when, its parent says so or dies:

- it runs in a session (and process group) of its own, because Ctrl-C in a terminal sends SIGINT to
  the whole foreground group: the broker would die at once, under the MQTT clients that the
  parent's drain is about to stop in order (each then logging "connection lost; reconnecting");
- it is given PR_SET_PDEATHSIG (Linux), so the kernel sends it SIGTERM when the parent dies, even
  by SIGKILL, when no drain runs. A change of user clears that signal, so the child runs as the
  parent's user rather than dropping to "mosquitto" as it does when started as root (it listens on
  loopback only, for the parent's own clients). A pipe the child watches would do the same on any Unix, but
  Mosquitto watches no pipe: the signal is the one means that needs nothing of the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from facility.netutil import free_port, wait_for_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with(parent: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when `parent` dies (Linux), else None.

    Runs in the child between fork and exec. The death signal follows the thread that forked,
    which is the event loop's (the thread that runs the demo); and a parent that died before the
    prctl took effect is seen by getppid(), after which the child must not start at all. Only
    those two system calls run there (between fork and exec, with threads about, little else is
    safe); the broker is the runtime's first part, started before the stores' threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(1)

    return preexec


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
            # Run as this process's user: Mosquitto started as root otherwise switches to the user
            # "mosquitto", and a change of user clears the death signal (see the module docstring).
            user = pwd.getpwuid(os.getuid()).pw_name
            conf.write_text(f"listener {self.port} {HOST}\nallow_anonymous true\npersistence false\nuser {user}\n")
            self._process = await asyncio.create_subprocess_exec(
                shutil.which("mosquitto") or "mosquitto",
                "-c",
                str(conf),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # not in the terminal's group: Ctrl-C reaches the parent alone
                preexec_fn=_die_with(os.getpid()),
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
            with contextlib.suppress(ProcessLookupError):  # it is gone already: nothing to stop
                self._process.terminate()
            await asyncio.wait_for(self._process.wait(), 10)
        if self._amqtt is not None:
            await self._amqtt.shutdown()  # type: ignore[attr-defined]
        if self._dir is not None:
            self._dir.cleanup()
