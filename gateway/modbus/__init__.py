"""Modbus ingest: request planning, one poller per bus, decoding through facility.codec."""
