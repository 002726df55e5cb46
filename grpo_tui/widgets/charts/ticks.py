"""Axis ticks and number labels a reader takes in at a glance.

plotext places ticks at evenly spaced fractions of the data range, which gives step
labels such as ``3.5 60.9`` and values such as ``0.0000750``. Here steps get integer
ticks on round numbers, values get ticks on 1-2-5 multiples that enclose the data (so
the top label is never below the highest point), and every label is as short as the
ticks' spacing allows, in scientific notation for very small or large numbers.
"""

from __future__ import annotations

import math


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``raw`` (> 0)."""
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10 * power


def step_ticks(lo: int, hi: int, count: int) -> list[int]:
    """At most ``count`` integer ticks on round multiples within ``[lo, hi]``.

    >>> step_ticks(1, 12, 6)
    [2, 4, 6, 8, 10, 12]
    >>> step_ticks(0, 2000, 5)
    [0, 500, 1000, 1500, 2000]
    >>> step_ticks(7, 7, 4)
    [7]
    """
    lo, hi = int(lo), int(hi)
    if hi <= lo:
        return [lo]
    power = 1
    while True:
        for m in (1, 2, 5):
            step = m * power
            first = (lo + step - 1) // step * step
            if (hi - first) // step + 1 <= max(1, count):
                return list(range(first, hi + 1, step)) or [lo]
        power *= 10


def value_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Ticks on 1-2-5 multiples whose first is <= ``lo`` and last >= ``hi`` (about
    ``count`` of them). A flat series (``lo == hi``) gets one tick at its value.

    >>> value_ticks(0.094, 0.61, 4)
    [0.0, 0.2, 0.4, 0.6, 0.8]
    >>> value_ticks(0.0, 0.0, 4)
    [0.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo if math.isfinite(lo) else 0.0]
    step = _nice_step((hi - lo) / max(1, count - 1))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def flat_range(value: float) -> tuple[float, float]:
    """The y range for a series that never changes: centred on it, a small span around it,
    so the line sits mid-chart with its one label instead of on a -1..1 axis."""
    span = abs(value) * 0.1 or 1.0
    return value - span, value + span


def compact(text: str) -> str:
    """``7.5e-05`` -> ``7.5e-5``; ``1e+06`` -> ``1e6``."""
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    sign = "-" if exponent.startswith("-") else ""
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def format_value(value: float, digits: int = 4) -> str:
    """One value (a cursor reading, a latest value): ``digits`` significant digits.

    >>> [format_value(v) for v in (7.5e-5, 0.34375, 6.227, 1234567.0, 0.0, -2.5)]
    ['7.5e-5', '0.3438', '6.227', '1.235e6', '0', '-2.5']
    """
    if not math.isfinite(value):
        return str(value)
    return compact(f"{value:.{digits}g}")


def format_ticks(ticks: list[float]) -> list[str]:
    """Labels for evenly spaced ticks: fixed point with as many decimals as the spacing
    needs, scientific notation when the numbers are tiny (< 1e-3) or huge (>= 1e5).

    >>> format_ticks([0.0, 2.5e-5, 5e-5, 7.5e-5])
    ['0', '2.5e-5', '5e-5', '7.5e-5']
    >>> format_ticks([0.0, 0.2, 0.4])
    ['0.0', '0.2', '0.4']
    >>> format_ticks([0.0, 500.0, 1000.0])
    ['0', '500', '1000']
    """
    if not ticks:
        return []
    largest = max(abs(t) for t in ticks)
    step = min((abs(b - a) for a, b in zip(ticks, ticks[1:]) if b != a), default=largest or 1.0)
    if largest and (largest < 1e-3 or largest >= 1e5):
        for sig in range(1, 8):
            labels = ["0" if t == 0 else compact(f"{t:.{sig}g}") for t in ticks]
            if all(abs(float(label) - t) <= step * 1e-3 for label, t in zip(labels, ticks)):
                return labels
        return labels
    for decimals in range(0, 10):
        if all(abs(round(t, decimals) - t) <= step * 1e-6 for t in ticks):
            break
    return [f"{t:.{decimals}f}" for t in ticks]
