"""Fault tests: the service under the faults of an operator's ordinary week, counted message by message."""
