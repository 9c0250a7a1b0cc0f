"""Benchmarks: each bench_<area>.py has ``run() -> list[(name, value, unit)]``; ``python -m benchmarks`` prints all."""
