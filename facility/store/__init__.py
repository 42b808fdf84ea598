"""Stores: live values in memory, telemetry history, and the ops store (alarms, audit)."""
