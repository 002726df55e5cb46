"""Reduce a series to a few points per terminal column without losing its extremes.

Charts redraw on a timer with data downsampled to the plot's width, so a run of
10,000 steps costs the same to draw as one of 100. A chart exists to show spikes, so
each bucket keeps its first, lowest, highest and last point (M4 decimation): a line
through them covers exactly the range the bucket's points span, and a one-step spike
of any size reaches the same height at every width. Bucket means would average it away.
"""

from __future__ import annotations

import math
from typing import Sequence


def downsample(xs: Sequence[float], ys: Sequence[float], width: int) -> tuple[list[float], list[float]]:
    """M4 decimation: the points split into ``width`` buckets of consecutive points, each
    bucket reduced to its first, min, max and last points, in step order (a bucket with
    fewer distinct points keeps fewer). Non-finite y values are dropped; a series of at
    most ``4 * width`` points is returned whole. Points are the series' own (x stays a
    real step), so the result's min and max are the series' min and max.

    >>> xs = list(range(1, 13))
    >>> ys = [1, 2, 1, 2, 1, 30, 1, 2, 1, 2, 1, 2]          # a 30x spike at step 6
    >>> downsample(xs, ys, 2)      # buckets 1..6 and 7..12: first, min, max, last of each
    ([1, 6, 7, 8, 12], [1, 30, 1, 2, 2])
    """
    points = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    width = max(1, width)
    n = len(points)
    if n <= 4 * width:
        return [p[0] for p in points], [p[1] for p in points]
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(width):
        lo, hi = b * n // width, (b + 1) * n // width
        if hi <= lo:
            continue
        low = high = lo
        for i in range(lo + 1, hi):
            y = points[i][1]
            if y < points[low][1]:
                low = i
            elif y > points[high][1]:
                high = i
        for i in sorted({lo, low, high, hi - 1}):
            out_x.append(points[i][0])
            out_y.append(points[i][1])
    return out_x, out_y


def window(xs: Sequence[float], ys: Sequence[float], lo: float | None, hi: float | None) -> tuple[list, list]:
    """The points with ``lo <= x <= hi`` (a zoomed chart draws only those); xs ascend."""
    if lo is None and hi is None:
        return list(xs), list(ys)
    from bisect import bisect_left, bisect_right

    start = 0 if lo is None else bisect_left(xs, lo)
    end = len(xs) if hi is None else bisect_right(xs, hi)
    return list(xs[start:end]), list(ys[start:end])


def value_at(xs: Sequence[float], ys: Sequence[float], step: float) -> tuple[float, float] | None:
    """The (step, value) of the point at ``step``, else the last one before it (a metric not
    logged every step, such as eval, reads its latest value); None before the first."""
    from bisect import bisect_right

    i = bisect_right(xs, step) - 1
    return (xs[i], ys[i]) if i >= 0 else None


def ema(values: Sequence[float], alpha: float) -> list[float]:
    """Exponential moving average, ``e[i] = e[i-1] + alpha * (v[i] - e[i-1])`` from
    ``e[0] = v[0]``; a non-finite value keeps the previous average.

    >>> ema([0.0, 1.0, 1.0], 0.5)
    [0.0, 0.5, 0.75]
    """
    out: list[float] = []
    prev = math.nan
    for v in values:
        if not math.isfinite(prev):
            prev = v
        elif math.isfinite(v):
            prev = prev + alpha * (v - prev)
        out.append(prev)
    return out
