"""Stopping the service: the signals that start it, and the drain in order.

SIGTERM (how systemd, Docker and Kubernetes stop a service) and SIGINT drain the pipeline in
order, within STOP_S in all: no more polling or MQTT reading; rule outcomes into their journal;
readings to the store or the spool; then the MQTT acknowledgements owed for them, and the
notifications queued. Each step logs what it drained and what it left. A second signal stops at
once; what was not acknowledged is delivered again by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from facility.aio import cancel_all
from gateway.feed import ReadingsFeed
from gateway.service import Gateway
from gateway.writer import TelemetryWriter
from rules.service import RulesService

log = logging.getLogger(__name__)

STOP_S = 8.0  # the whole drain at a stop: inside Docker's 10 s between SIGTERM and SIGKILL


@dataclass
class Pipeline:
    """What must be drained in order at a stop, filled in as the parts start."""

    writer: TelemetryWriter | None  # None: neither a store nor an uplink here (a rule worker)
    writer_task: asyncio.Task[None] | None = None
    rules: RulesService | None = None
    gateway: Gateway | ReadingsFeed | None = None  # where the readings come from
    notifier_stop: Callable[[], Awaitable[None]] | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # last: MQTT clients

    async def drain(self) -> None:
        """Stop the parts upstream first, so that each one downstream is handed all there is."""
        began = time.monotonic()
        log.info("stopping: draining the pipeline (at most %g s)", STOP_S)
        try:
            async with asyncio.timeout(STOP_S):
                if self.gateway is not None:
                    await self.gateway.stop_reading()  # nothing new comes in
                if self.rules is not None:
                    await self.rules.stop()  # outcomes recorded, or kept in their journal
                if self.writer_task is not None:
                    await cancel_all([self.writer_task])  # readings to the store or the spool
                if self.gateway is not None:
                    await self.gateway.stop()  # the acknowledgements they were waiting for
                if self.notifier_stop is not None:
                    await self.notifier_stop()
        except TimeoutError:
            log.error("stopping: the drain took over %g s and was cut short", STOP_S)
        finally:
            for close in reversed(self.closers):
                with contextlib.suppress(Exception):
                    await close()
        log.info("stopped in %.1f s", time.monotonic() - began)


@contextlib.contextmanager
def signals(stopping: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT start the drain; a second one stops at once. In place of uvicorn's own
    handlers, which re-raise the signal once the server returns and so skip the drain."""
    if threading.current_thread() is not threading.main_thread():
        yield  # a test running the service in a thread stops it with its `stop` event
        return
    loop = asyncio.get_running_loop()
    caught: list[int] = []

    def handle(sig: int) -> None:
        caught.append(sig)
        if len(caught) > 1:
            log.warning("%s after %s: stopping at once", signal.Signals(sig).name, signal.Signals(caught[0]).name)
            logging.shutdown()
            os._exit(128 + sig)
        log.info("%s: stopping; a second one stops at once", signal.Signals(sig).name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
