"""Simulated hardware, the library-floor world, scenarios, faults and the virtual clock."""
