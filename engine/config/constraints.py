"""What a config value must satisfy beyond its type, written where the field is declared:

    learning_rate: Annotated[float, Range(ge=0)] = 1e-6
    split: Annotated[str, NotEmpty()] = "train"

:mod:`engine.config.fields` reads these markers off the annotations to check values, and
:mod:`engine.config.docs` reads them to tell users each field's type, so a range is written
once. Each marker answers two questions: what is wrong with a value (``problem``, the text
after ``"field: "`` in an error) and how to write the constraint for a reader (``describe``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """A closed (``ge``/``le``) or open (``gt``/``lt``) bound on either side; None = unbounded.

    >>> Range(gt=0, le=1).problem(0)
    'must be in (0, 1], got 0'
    >>> Range(ge=0).describe()
    '≥ 0'
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __post_init__(self) -> None:
        if self.ge is not None and self.gt is not None or self.le is not None and self.lt is not None:
            raise ValueError("a Range takes at most one lower bound (ge or gt) and one upper bound (le or lt)")

    @property
    def lower(self) -> float | None:
        return self.gt if self.gt is not None else self.ge

    @property
    def upper(self) -> float | None:
        return self.lt if self.lt is not None else self.le

    def contains(self, v: float) -> bool:
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))

    def _text(self, ge: str, le: str) -> str:
        lo, hi = self.lower, self.upper
        if lo is not None and hi is not None:
            return f"in {'(' if self.gt is not None else '['}{lo:g}, {hi:g}{')' if self.lt is not None else ']'}"
        if lo is not None:
            return f"{'>' if self.gt is not None else ge} {lo:g}"
        if hi is not None:
            return f"{'<' if self.lt is not None else le} {hi:g}"
        return "any number"

    def problem(self, v: float) -> str | None:
        """What is wrong with ``v`` (in the words of a config error), or None when it is in range."""
        return None if self.contains(v) else f"must be {self._text('>=', '<=')}, got {v!r}"

    def describe(self) -> str:
        """The range as a reader writes it after the type: ``≥ 0``, ``> 0``, ``in (0, 1]``."""
        return self._text("≥", "≤")


@dataclass(frozen=True)
class NotEmpty:
    """A string that must hold more than white space (a path, a split name, a column).

    >>> NotEmpty().problem("  ")
    'must not be empty'
    """

    def problem(self, v: str) -> str | None:
        return None if v.strip() else "must not be empty"

    def describe(self) -> str:
        return "(not empty)"
