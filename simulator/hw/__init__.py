"""Register-level simulated hardware behind the same bus ports as the real drivers."""
