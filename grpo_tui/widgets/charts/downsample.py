"""Reduce a series to at most one point per terminal column.

Charts redraw on a timer with data downsampled to the plot's width, so a run of
10,000 steps costs the same to draw as one of 100. Each bucket keeps its mean, which
is what a line one character wide can honestly show.
"""

from __future__ import annotations

import math
from typing import Sequence


def downsample(xs: Sequence[float], ys: Sequence[float], width: int) -> tuple[list[float], list[float]]:
    """Mean of x and y per bucket, at most ``width`` buckets; non-finite y values are dropped."""
    points = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    width = max(1, width)
    if len(points) <= width:
        return [p[0] for p in points], [p[1] for p in points]
    out_x: list[float] = []
    out_y: list[float] = []
    n = len(points)
    for b in range(width):
        lo, hi = b * n // width, (b + 1) * n // width
        if hi <= lo:
            continue
        chunk = points[lo:hi]
        out_x.append(sum(p[0] for p in chunk) / len(chunk))
        out_y.append(sum(p[1] for p in chunk) / len(chunk))
    return out_x, out_y
