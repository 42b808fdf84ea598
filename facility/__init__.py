"""The kernel: data model, site and profile files, stores and the in-process bus.

Every other package imports this one; it imports none of them.
"""
