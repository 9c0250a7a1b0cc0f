"""Pictures of a simulated day as plain SVG text: floor maps at chosen times and a day timeline.

No plotting library: a gateway image should not carry one, and SVG is text a browser shows.
Floor map: zones shaded by the mean lux at their seats (dark = under 100 lx, bright = 750 lx and
up), seats coloured by their true state, seated people as dots. Timeline: occupied seats, mean lux
at occupied seats, lighting watts and peak CO2 over the day, each scaled to its own band.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np

if TYPE_CHECKING:
    from simulator.world.world import World

SEAT_COLOURS = {"free": "#9ad39a", "occupied": "#d9534f", "away": "#f0ad4e", "ghost": "#7b5ea7"}
SCALE = 20.0  # pixels per metre


def _lux_shade(lux: float) -> str:
    level = int(40 + 200 * min(1.0, max(0.0, (lux - 100.0) / 650.0)))
    return f"rgb({level},{level},{max(0, level - 30)})"


def floor_map(w: World, snap: dict[str, Any]) -> str:
    """One SVG floor map from a snapshot taken by the world."""
    xmin, ymin, xmax, ymax = w.plan.bounds
    width, height = (xmax - xmin) * SCALE + 40, (ymax - ymin) * SCALE + 70

    def px(x: float, y: float) -> tuple[float, float]:  # y north is up on the page
        return 20 + (x - xmin) * SCALE, 50 + (ymax - y) * SCALE

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="20" y="20" font-size="14">{escape(w.cfg.site.name or w.cfg.site.id)} at {snap["wall"]}</text>']
    seat_lux = snap["seat_lux"]
    for z, poly in enumerate(w.plan.zone_polygons):
        seats = np.flatnonzero(w.plan.seat_zone == z)
        lux = float(seat_lux[seats].mean()) if len(seats) else 0.0
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, y) for x, y in poly))
        out.append(f'<polygon points="{pts}" fill="{_lux_shade(lux)}" stroke="#333"/>')
        cx, cy = px(sum(p[0] for p in poly) / len(poly), max(p[1] for p in poly))
        out.append(f'<text x="{cx - 40:.1f}" y="{cy + 14:.1f}">{escape(w.plan.zone_ids[z])}: '
                   f'{int(snap["zone_people"][z])} people, {lux:.0f} lx, {snap["co2"][z]:.0f} ppm</text>')
    for i, status in enumerate(snap["seats"]):
        x, y = px(float(w.plan.seat_xy[i, 0]), float(w.plan.seat_xy[i, 1]))
        out.append(f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12" fill="{SEAT_COLOURS[status]}" '
                   f'stroke="#222"><title>{escape(w.plan.seat_ids[i])}: {status}</title></rect>')
        if status == "occupied":
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#111"/>')
    legend_x = 20.0
    for name, colour in SEAT_COLOURS.items():
        out.append(f'<rect x="{legend_x:.0f}" y="28" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{legend_x + 14:.0f}" y="37">{name}</text>')
        legend_x += 80
    out.append("</svg>")
    return "\n".join(out)


def timeline(w: World) -> str:
    """The day as four stacked line charts."""
    rows = w.timeline
    width, band = 900.0, 110.0
    series = [("occupied", "occupied seats", "#d9534f"), ("lux", "mean lux at occupied seats", "#c9a227"),
              ("lighting_w", "lighting W", "#337ab7"), ("co2_max", "peak zone CO2 ppm", "#5cb85c")]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 60:.0f}" height="{band * len(series) + 40:.0f}" '
           'font-family="sans-serif" font-size="11">']
    span = max((r["t"] for r in rows), default=1.0) or 1.0
    for k, (key, label, colour) in enumerate(series):
        top = 20 + k * band
        values = [r[key] for r in rows]
        peak = max(values, default=1.0) or 1.0
        pts = " ".join(f"{40 + width * r['t'] / span:.1f},{top + band - 20 - (band - 30) * r[key] / peak:.1f}"
                       for r in rows)
        out.append(f'<text x="40" y="{top + 8:.0f}">{escape(label)} (max {peak:.0f})</text>')
        out.append(f'<line x1="40" y1="{top + band - 20:.0f}" x2="{40 + width:.0f}" y2="{top + band - 20:.0f}" '
                   'stroke="#999"/>')
        if pts:
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    for hour in range(0, int(span // 3600) + 1):
        x = 40 + width * hour * 3600 / span
        label = w.wall(w.t0 + hour * 3600).strftime("%H:%M")
        out.append(f'<text x="{x:.0f}" y="{band * len(series) + 30:.0f}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_svgs(w: World, directory: Path, times: list[str]) -> list[Path]:
    """Floor maps at the snapshots nearest ``times`` (HH:MM) and ``timeline.svg``."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for wanted in times:
        if not w.snapshots:
            break
        hh, mm = (int(v) for v in wanted.split(":"))
        goal = hh * 60 + mm
        snap = min(w.snapshots, key=lambda s: abs(int(s["wall"][:2]) * 60 + int(s["wall"][3:]) - goal))
        path = directory / f"floor-{snap['wall'].replace(':', '')}.svg"
        path.write_text(floor_map(w, snap), encoding="utf-8")
        written.append(path)
    path = directory / "timeline.svg"
    path.write_text(timeline(w), encoding="utf-8")
    written.append(path)
    return written
