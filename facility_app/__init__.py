"""The application: the `facility` command and the runtime that wires the parts into one process.

The only package that imports all the others (facility, gateway, rules, simulators, reports, api):
the kernel and the parts stay free of it, which the import contract in `make lint` holds.
"""
