"""Support that both the tests and the benchmarks use: real servers on free ports (Mosquitto,
PostgreSQL databases, InfluxDB, VictoriaMetrics), a TCP proxy to cut, the whole system in one
process, and HTTP clients that check every answer. Not shipped; `tests/` holds only tests."""
