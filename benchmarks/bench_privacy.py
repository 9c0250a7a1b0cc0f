"""What the noisy counts cost the gateway: OpenDP's memory and disk, and one noisy count's CPU.

``run()`` returns ``(name, value, unit)`` rows:

- ``rss_added_by_opendp``: VmRSS after the first noisy count
  (:func:`edge_agent.privacy.budget.discrete_laplace`, which imports OpenDP and builds its
  measurement) minus VmRSS before, in a fresh interpreter with what the daemon has loaded anyway
  (numpy, pydantic, the daemon's modules); ``..._anon`` and ``..._file`` split it into private
  memory and pages of OpenDP's shared library (file-backed: the kernel can drop them under
  pressure and reread them);
- ``opendp_on_disk``: the installed package (almost all of it one shared library);
- ``noisy_count_us`` and ``noisy_vs_bare``: one :func:`discrete_laplace` against calling the
  OpenDP measurement itself (the wrapper's cost: a cached measurement, an int conversion).

    .venv/bin/python -m benchmarks.bench_privacy
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

CALLS = 20_000

_RSS_PROBE = """
def rss():
    out = {}
    for line in open('/proc/self/status'):
        key = line.split(':')[0]
        if key in ('VmRSS', 'RssAnon', 'RssFile'):
            out[key] = int(line.split()[1])
    return out
import numpy, pydantic  # the daemon has both loaded anyway
import edge_agent.assembly, edge_agent.privacy.budget
before = rss()
from edge_agent.privacy.budget import discrete_laplace
discrete_laplace(5, 4.0)
after = rss()
print(*(after[k] - before[k] for k in ('VmRSS', 'RssAnon', 'RssFile')))
"""


def _package_bytes() -> int:
    import importlib.util

    spec = importlib.util.find_spec("opendp")
    if spec is None or spec.origin is None:
        return 0
    return sum(p.stat().st_size for p in Path(spec.origin).parent.rglob("*") if p.is_file())


def _per_call(fn: object) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(CALLS):
            fn(i % 50)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - t0) / CALLS)
    return best * 1e6


def run() -> list[tuple[str, float, str]]:
    probe = subprocess.run([sys.executable, "-c", _RSS_PROBE], capture_output=True, text=True, timeout=120,
                           check=True)
    total, anon, mapped = (int(v) / 1024.0 for v in probe.stdout.split())
    from opendp.domains import atom_domain
    from opendp.measurements import make_laplace
    from opendp.metrics import absolute_distance
    from opendp.mod import enable_features

    from edge_agent.privacy.budget import discrete_laplace

    enable_features("contrib")
    bare = make_laplace(atom_domain(T=int), absolute_distance(T=int), scale=4.0)
    ours = _per_call(lambda v: discrete_laplace(v, 4.0))
    raw = _per_call(bare)
    return [
        ("rss_added_by_opendp", total, "MiB"),
        ("rss_added_by_opendp_anon", anon, "MiB"),
        ("rss_added_by_opendp_file", mapped, "MiB"),
        ("opendp_on_disk", _package_bytes() / 2**20, "MiB"),
        ("noisy_count_us", ours, "us"),
        ("noisy_count_bare_opendp_us", raw, "us"),
        ("noisy_vs_bare", ours / raw if raw > 0 else float("nan"), "x"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:32} {value:10.3f} {unit}")
