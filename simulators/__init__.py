"""Simulators: device models that speak the same Modbus and MQTT as the real plant.

They read the same profiles as the gateway (from `facility`) and import nothing else of the project.
"""
