"""Telemetry servers of the tests' own, shared by the gateway's store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testsupport.influx_servers import Influx1, VictoriaMetrics


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path_factory.mktemp("vm")) as server:
        yield server


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx1]:
    with Influx1(tmp_path_factory.mktemp("influx")) as server:
        yield server
