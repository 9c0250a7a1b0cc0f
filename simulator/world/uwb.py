"""UWB ranging as a DWM1001 tag would report it: noisy ranges to anchors and a solved position.

Noise per link (HARDWARE.md section 6): line of sight is unbiased Gaussian, sigma 3 cm (the
suggested 2-5 cm); a blocked link (a body, a shelf; probability 0.25 per link while seated,
redrawn whenever the patron moves) reads long by 0.2 m plus a Pareto tail (median ~0.3 m,
occasionally over 1 m), as the forum measurements of NLOS show. The tag's position is the
least-squares fit of those ranges (a few Gauss-Newton steps in 2-D at the tag's height), so NLOS
links pull it the way they pull a real location engine.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
LOS_SIGMA_M = 0.03
NLOS_PROBABILITY = 0.25
NLOS_MIN_BIAS_M = 0.2
TAG_HEIGHT_M = 1.1


def nlos_links(n_anchors: int, rng: np.random.Generator) -> FloatArray:
    """Bias (m) of each anchor link for one placement of a tag; 0 for line-of-sight links."""
    blocked = rng.random(n_anchors) < NLOS_PROBABILITY
    tail = np.minimum(2.0, 0.25 * rng.pareto(2.5, n_anchors))
    return np.where(blocked, NLOS_MIN_BIAS_M + tail, 0.0)


def measure(true_xy: FloatArray, bias: FloatArray, anchors: FloatArray,
            rng: np.random.Generator) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Ranges (n, m), solved positions (n, 2) and quality (n,) for n tags at once."""
    dz = anchors[None, :, 2] - TAG_HEIGHT_M
    dx = anchors[None, :, 0] - true_xy[:, 0:1]
    dy = anchors[None, :, 1] - true_xy[:, 1:2]
    ranges = np.sqrt(dx * dx + dy * dy + dz * dz) + bias + rng.normal(0.0, LOS_SIGMA_M, bias.shape)
    est = true_xy.copy()
    for _ in range(4):
        ex = est[:, 0:1] - anchors[None, :, 0]
        ey = est[:, 1:2] - anchors[None, :, 1]
        pred = np.sqrt(ex * ex + ey * ey + dz * dz)
        pred = np.maximum(pred, 1e-6)
        r = ranges - pred  # residuals (n, m)
        jx, jy = ex / pred, ey / pred
        a11, a12, a22 = (jx * jx).sum(1), (jx * jy).sum(1), (jy * jy).sum(1)
        b1, b2 = (jx * r).sum(1), (jy * r).sum(1)
        det = a11 * a22 - a12 * a12
        ok = np.abs(det) > 1e-9
        safe = np.where(ok, det, 1.0)
        est[:, 0] += np.where(ok, (a22 * b1 - a12 * b2) / safe, 0.0)
        est[:, 1] += np.where(ok, (a11 * b2 - a12 * b1) / safe, 0.0)
    quality = np.clip(100 - 20 * (bias > 0).sum(axis=1), 10, 100).astype(np.int64)
    return ranges, est, quality
