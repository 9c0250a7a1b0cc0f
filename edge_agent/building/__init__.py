"""The building's own systems: DALI lighting and the BMS over BACnet/IP.

Commercial luminaires are dimmed over DALI (IEC 62386) and air handling belongs to the building
management system, reached over BACnet/IP. Both libraries (python-dali, bacpypes3) are optional
extras, imported only when a configuration names a DALI master or a ``[bacnet]`` table, so a
gateway without them installs and runs exactly as before.

- :mod:`edge_agent.building.config`: the config tables (``[[dali]]``, ``[bacnet]``, the ``dali``
  and ``bacnet`` keys of actuators and sensors), validated without importing either library;
- :mod:`edge_agent.building.devices`: DALI lines and the BACnet link built on a backend, their
  outputs and sensors, the DALI line watch, and the technician's operations.
"""
