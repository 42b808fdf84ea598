"""The gateway: reads devices over Modbus and MQTT into readings with quality."""
