"""The floor display page: free seats and comfort, for an entrance screen or a phone.

Served by the gateway itself with aiohttp (the ``http`` extra, imported only when ``[display]``
is configured), read-only, on the configured address (loopback by default). Everything it needs
is in the page: no CDN, no fonts or scripts from elsewhere, so it works on a library network
without internet.

- ``/``: the page: a floor plan as SVG (zones and seats from the site config), each seat coloured
  free, taken or away, each zone with its free seats in large type and its comfort (lux, CO2);
- ``/state``: what the page shows, as JSON (:func:`display_state`);
- ``/events``: the same as a server-sent event stream, one event each time the decide loop sees
  the availability or comfort change (and a comment every 15 s to keep proxies from closing it);
  the page falls back to polling ``/state`` when the stream breaks.

No personal data: seat ids, statuses shown as free / taken / away, counts, lux and CO2. Never
who sits where, since when, or a tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_agent.config import SiteConfig
from rules.state import FloorState, SeatStatus

if TYPE_CHECKING:
    from aiohttp import web

    from edge_agent.availability import FloorAvailability

log = logging.getLogger("edge_agent.display")

#: What a patron is shown for each seat status: a ghost seat is someone's belongings, not free.
SHOWN = {SeatStatus.FREE: "free", SeatStatus.OCCUPIED: "taken", SeatStatus.AWAY: "away",
         SeatStatus.GHOST: "away", SeatStatus.UNKNOWN: "unknown"}
KEEPALIVE_S = 15.0


def display_state(state: FloorState | None, availability: FloorAvailability) -> dict[str, Any]:
    """What the page shows: each seat as free/taken/away/unknown, each zone's counts and comfort."""
    seats = {} if state is None else {sid: SHOWN[v.status] for sid, v in state.seats.items()}
    zones: dict[str, Any] = {}
    for zid, a in availability.snapshot().items():
        view = None if state is None else state.zones.get(zid)
        lux = None if view is None or view.lux.value is None else round(view.lux.value)
        co2 = None if view is None or view.co2.value is None else round(view.co2.value)
        zones[zid] = {"name": a.name, "free": a.free, "ready_soon": a.ready_soon, "seats": a.seats_total,
                      "lux": lux, "co2": co2}
    return {"seats": seats, "zones": zones}


def floor_svg(cfg: SiteConfig) -> str:
    """The floor plan: zone outlines with their name and counts, a circle per seat (``data-seat``)."""
    xs = [x for z in cfg.zones for x, _ in z.polygon]
    ys = [y for z in cfg.zones for _, y in z.polygon]
    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    pad = 0.5
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="plan" role="img" aria-label="floor plan" '
           f'viewBox="{x0 - pad:.2f} {-(y1 + pad):.2f} {x1 - x0 + 2 * pad:.2f} {y1 - y0 + 2 * pad:.2f}">']
    for z in cfg.zones:
        points = " ".join(f"{x:.2f},{-y:.2f}" for x, y in z.polygon)
        zx = sum(x for x, _ in z.polygon) / len(z.polygon)
        ztop = -max(y for _, y in z.polygon) + 1.1
        name = html.escape(z.name or z.id)
        out.append(f'<g class="zone" data-zone="{html.escape(z.id)}"><polygon points="{points}"/>'
                   f'<text class="zname" x="{zx:.2f}" y="{ztop:.2f}">{name}</text>'
                   f'<text class="zfree" x="{zx:.2f}" y="{ztop + 1.3:.2f}">-</text></g>')
    for s in cfg.seats:
        out.append(f'<circle class="seat unknown" data-seat="{html.escape(s.id)}" cx="{s.x:.2f}" cy="{-s.y:.2f}" '
                   f'r="0.55"><title>{html.escape(s.id)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: free seats</title>
<style>
body {{ margin: 0; font-family: system-ui, sans-serif; background: #111; color: #eee; }}
header {{ display: flex; justify-content: space-between; align-items: baseline; padding: 1vh 2vw; }}
h1 {{ font-size: 5vh; margin: 0; }}
#total {{ font-size: 5vh; font-weight: bold; color: #4cd964; }}
main {{ display: flex; gap: 2vw; padding: 0 2vw 2vh; }}
#plan {{ flex: 3; height: 78vh; background: #1c1c1c; border-radius: 1vh; }}
.zone polygon {{ fill: #262626; stroke: #555; stroke-width: 0.08; }}
.zname {{ fill: #ccc; font-size: 0.9px; text-anchor: middle; }}
.zfree {{ fill: #4cd964; font-size: 1.2px; font-weight: bold; text-anchor: middle; }}
.seat {{ stroke: #111; stroke-width: 0.08; }}
.seat.free {{ fill: #4cd964; }} .seat.taken {{ fill: #d9534f; }} .seat.away {{ fill: #f0ad4e; }}
.seat.unknown {{ fill: #777; }}
#zones {{ flex: 2; list-style: none; margin: 0; padding: 0; font-size: 2.8vh; }}
#zones li {{ background: #1c1c1c; border-radius: 1vh; margin-bottom: 1vh; padding: 0.6vh 1.5vw; }}
#zones .free {{ font-size: 4.2vh; font-weight: bold; color: #4cd964; }}
#zones .comfort {{ color: #aaa; font-size: 2.6vh; }}
footer {{ padding: 0 2vw; color: #888; font-size: 2.2vh; }}
.key span {{ display: inline-block; width: 2vh; height: 2vh; border-radius: 50%; vertical-align: middle; }}
</style></head>
<body>
<header><h1>{title}</h1><div id="total">-</div></header>
<main>{svg}<ul id="zones"></ul></main>
<footer class="key"><span style="background:#4cd964"></span> free &nbsp;
<span style="background:#d9534f"></span> taken &nbsp; <span style="background:#f0ad4e"></span> away, back soon
&nbsp; <span id="updated"></span></footer>
<script>
function show(s) {{
  for (const el of document.querySelectorAll("circle.seat")) {{
    el.setAttribute("class", "seat " + (s.seats[el.dataset.seat] || "unknown"));
  }}
  let free = 0, list = "";
  for (const [id, z] of Object.entries(s.zones)) {{
    free += z.free;
    const g = document.querySelector('g.zone[data-zone="' + CSS.escape(id) + '"] .zfree');
    if (g) g.textContent = z.free + " free";
    const comfort = (z.lux === null ? "" : z.lux + " lux") + (z.co2 === null ? "" : " · CO\u2082 " + z.co2 + " ppm");
    list += '<li data-zone="' + id + '"><div>' + z.name + '</div><span class="free">' + z.free +
      '</span> free' + (z.ready_soon ? ' · ' + z.ready_soon + ' soon' : '') +
      '<div class="comfort">' + comfort + '</div></li>';
  }}
  document.getElementById("zones").innerHTML = list;
  document.getElementById("total").textContent = free + " seats free";
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}}
function poll() {{ fetch("state").then(r => r.json()).then(show).catch(() => {{}}); }}
poll();
if (window.EventSource) {{
  const es = new EventSource("events");
  es.onmessage = (e) => show(JSON.parse(e.data));
  es.onerror = () => {{ es.close(); setInterval(poll, 5000); }};
}} else {{ setInterval(poll, 5000); }}
</script></body></html>
"""


class FloorDisplay:
    """The page's server (see module docstring); ``async with`` it for the daemon's lifetime."""

    def __init__(self, cfg: SiteConfig, state: Callable[[], FloorState | None],
                 availability: FloorAvailability) -> None:
        assert cfg.display is not None
        self.cfg = cfg
        self.state = state
        self.availability = availability
        self.bind, self.port = cfg.display.bind, cfg.display.port
        title = cfg.display.title or cfg.site.name or f"Floor {cfg.site.floor}"
        self.page = PAGE.format(title=html.escape(title), svg=floor_svg(cfg))
        self._changed = asyncio.Event()
        self._last: str = ""
        self._runner: web.AppRunner | None = None

    def notify(self, _state: FloorState) -> None:
        """After each pass of the decide loop: wake the event streams if what the page shows changed."""
        doc = json.dumps(display_state(self.state(), self.availability), sort_keys=True)
        if doc != self._last:
            self._last = doc
            self._changed.set()
            self._changed = asyncio.Event()

    async def __aenter__(self) -> FloorDisplay:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/state", self._state)
        app.router.add_get("/events", self._events)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            log.error("floor display: cannot listen on %s:%d (%s); set [display] port or bind", self.bind,
                      self.port, exc.strerror or exc)
            return self
        log.info("floor display on http://%s:%d/", self.bind, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _doc(self) -> str:
        return json.dumps(display_state(self.state(), self.availability))

    async def _index(self, _request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        return web.Response(text=self.page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _state(self, _request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        return web.Response(text=self._doc(), content_type="application/json", headers={"Cache-Control": "no-store"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        await response.write(f"data: {self._doc()}\n\n".encode())
        while True:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE_S):
                    await changed.wait()
            message = f"data: {self._doc()}\n\n" if changed.is_set() else ": keep-alive\n\n"
            try:
                await response.write(message.encode())
            except (ConnectionError, RuntimeError):
                return response
