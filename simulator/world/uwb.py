"""UWB ranging on the floor as DWM1001 tags would see it, and the position each tag computes itself.

Range of a tag to an anchor = true distance + the system's common offset + NLOS excess + noise:

- **LOS noise**: Gaussian, sigma 3 cm (HARDWARE.md section 6 suggests 2-5 cm).
- **Common offset**: +0.18 m on every range (``OFFSET_M``): uncalibrated antenna delays read long
  by about the same amount everywhere (+0.15..0.2 m is typical for DW1000 systems).
- **NLOS** reads long by 0.2 m plus a Pareto tail (median ~0.3 m, occasionally over 1 m), as the
  forum measurements show, on a link that is blocked:
  - by *furniture*: a shelf or partition between a seat and an anchor blocks that link for
    everyone who sits there (``FURNITURE_NLOS_PROBABILITY`` per seat and anchor, drawn once);
  - by *people*: the wearer's own body (``BODY_NLOS_PROBABILITY`` per link, redrawn whenever the
    patron moves) and the people seated within 2.5 m (``CROWD_NLOS_PER_NEIGHBOUR`` each).
- **The tag's own position** (what a listener hears): a PANS tag ranges with up to four anchors
  and computes its position itself (Qorvo forum, "Range data via anchor not tag?"). The
  simulated engine takes the four shortest ranges and solves them by least squares at the tag's
  height (a few Gauss-Newton steps): offset and NLOS pull it the way they pull a simple engine.
  PANS's own algorithm is not public; this is a model of one, not of it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
LOS_SIGMA_M = 0.03
OFFSET_M = 0.18
BODY_NLOS_PROBABILITY = 0.12
CROWD_NLOS_PER_NEIGHBOUR = 0.03
FURNITURE_NLOS_PROBABILITY = 0.12
NLOS_MIN_BIAS_M = 0.2
TAG_HEIGHT_M = 1.1
ENGINE_ANCHORS = 4


def _excess(n: tuple[int, ...], rng: np.random.Generator) -> FloatArray:
    return NLOS_MIN_BIAS_M + np.minimum(2.0, 0.25 * rng.pareto(2.5, n))


def nlos_links(n_anchors: int, rng: np.random.Generator, neighbours: int = 0) -> FloatArray:
    """Bias (m) the people around a tag put on each anchor link for one placement; 0 where LOS."""
    p = min(0.9, BODY_NLOS_PROBABILITY + CROWD_NLOS_PER_NEIGHBOUR * neighbours)
    blocked = rng.random(n_anchors) < p
    return np.where(blocked, _excess((n_anchors,), rng), 0.0)


def furniture_links(n_seats: int, n_anchors: int, rng: np.random.Generator) -> FloatArray:
    """Bias (m) furniture puts on each seat's link to each anchor, fixed for the day; 0 where LOS."""
    blocked = rng.random((n_seats, n_anchors)) < FURNITURE_NLOS_PROBABILITY
    return np.where(blocked, _excess((n_seats, n_anchors), rng), 0.0)


def measure(true_xy: FloatArray, bias: FloatArray, anchors: FloatArray, rng: np.random.Generator,
            offset_m: float = OFFSET_M) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Ranges (n, m), the tags' own positions (n, 2) and their quality (n,) for n tags at once."""
    dz = anchors[None, :, 2] - TAG_HEIGHT_M
    dx = anchors[None, :, 0] - true_xy[:, 0:1]
    dy = anchors[None, :, 1] - true_xy[:, 1:2]
    ranges = np.sqrt(dx * dx + dy * dy + dz * dz) + offset_m + bias + rng.normal(0.0, LOS_SIGMA_M, bias.shape)
    # The engine's anchors: the four shortest ranges of each tag (weight 1), the rest unused (0).
    k = min(ENGINE_ANCHORS, anchors.shape[0])
    order = np.argsort(ranges, axis=1)[:, :k]
    use = np.zeros_like(ranges)
    np.put_along_axis(use, order, 1.0, axis=1)
    est = (use @ anchors[:, :2]) / k  # start at the centre of the anchors it ranges with
    for _ in range(6):
        ex = est[:, 0:1] - anchors[None, :, 0]
        ey = est[:, 1:2] - anchors[None, :, 1]
        pred = np.maximum(np.sqrt(ex * ex + ey * ey + dz * dz), 1e-6)
        r = (ranges - pred) * use
        jx, jy = ex / pred * use, ey / pred * use
        a11, a12, a22 = (jx * jx).sum(1), (jx * jy).sum(1), (jy * jy).sum(1)
        b1, b2 = (jx * r).sum(1), (jy * r).sum(1)
        det = a11 * a22 - a12 * a12
        ok = np.abs(det) > 1e-9
        safe = np.where(ok, det, 1.0)
        est[:, 0] += np.where(ok, (a22 * b1 - a12 * b2) / safe, 0.0)
        est[:, 1] += np.where(ok, (a11 * b2 - a12 * b1) / safe, 0.0)
    blocked = ((bias > 0) * use).sum(axis=1)
    quality = np.clip(100 - 20 * blocked, 10, 100).astype(np.int64)
    return ranges, est, quality
