"""Rules: YAML rule files compiled into conditions that raise alarms."""
