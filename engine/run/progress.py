"""Where a step stands while it runs: its phase and how far that phase has got.

A step of a 7B model takes minutes; its metrics arrive only at its end. In between, the
trainer publishes :class:`Progress` events — generation (tokens so far, sequences finished,
tokens/s), scoring (which reward function), the reference forward, the update (micro-batch
i of M), evaluation — a few times a second at most. In-process viewers get them from the
Control; other processes read ``progress.json`` in the run directory, which
:class:`ProgressFile` replaces whole on each one (the latest only: progress is a gauge, not
a log, so events.jsonl stays one line per thing that happened).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.run.events import Event

PROGRESS = "progress.json"

PHASES = {
    "generate": "generating",
    "score": "scoring",
    "reference": "reference forward",
    "update": "updating",
    "eval": "evaluating",
}
"""Phase names as records carry them → as the header says them."""


@dataclass
class Progress(Event):
    """Step ``step`` is in ``phase``: ``done`` of ``total`` ``unit`` (``total`` 0: unknown).

    ``phase_started`` and ``step_started`` are epoch seconds; ``detail`` is a short line
    (``"accuracy (2 of 3)"``, ``"5/16 finished · 41 tok/s"``); ``eta_s`` the seconds the
    run still needs as estimated from the phase rates, before a whole step has been timed
    (None when there is nothing to estimate from); ``pending`` the requests that wait for the
    step's end (``pause``, ``stop``, ``checkpoint``)."""

    step: int
    phase: str
    done: float = 0.0
    total: float = 0.0
    unit: str = ""
    detail: str = ""
    phase_started: float = 0.0
    step_started: float = 0.0
    eta_s: float | None = None
    pending: list[str] = field(default_factory=list)
    kind = "progress"

    @property
    def fraction(self) -> float | None:
        """How far the phase has got, 0…1 (None when its size is unknown)."""
        return phase_fraction(self.done, self.total)

    def record(self) -> dict[str, Any]:
        """As ``progress.json`` holds it."""
        return asdict(self)


def phase_fraction(done: float, total: float) -> float | None:
    """``done / total`` clamped to 0…1; None when the total is unknown (0).

    >>> phase_fraction(37, 100)
    0.37
    >>> phase_fraction(5, 4), phase_fraction(3, 0)
    (1.0, None)
    """
    if total <= 0:
        return None
    return min(1.0, max(0.0, done / total))


def projected_phase_s(elapsed_s: float, fraction: float | None) -> float | None:
    """The whole phase's duration extrapolated from its rate so far: elapsed ÷ fraction.

    >>> projected_phase_s(30.0, 0.25)
    120.0
    >>> projected_phase_s(30.0, 0.0) is None, projected_phase_s(30.0, None) is None
    (True, True)
    """
    if fraction is None or fraction <= 0:
        return None
    return elapsed_s / fraction


def first_step_eta(done_phases_s: float, elapsed_in_phase_s: float, fraction: float | None,
                   steps_left: int) -> float | None:
    """The run's remaining time before any step has ended: this step projected from what its
    phases took so far (those done, plus the current one extrapolated from its rate), times
    the steps still to do, less what this step already spent. Phases still to come are not
    counted, so it is a lower bound that rises towards the truth as the step goes on.

    ``steps_left`` counts the current step.

    >>> first_step_eta(done_phases_s=40.0, elapsed_in_phase_s=10.0, fraction=0.5, steps_left=10)
    550.0
    """
    projected = projected_phase_s(elapsed_in_phase_s, fraction)
    if projected is None:
        return None
    step_s = done_phases_s + projected
    return max(0.0, step_s * steps_left - (done_phases_s + elapsed_in_phase_s))


class ProgressFile:
    """Subscriber (rank 0) that keeps ``progress.json`` in the run directory at the newest
    :class:`Progress`; written aside and renamed, so a reader never sees half of one."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / PROGRESS

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Progress):
            return
        tmp = self.path.with_name(PROGRESS + ".tmp")
        try:
            tmp.write_text(json.dumps(event.record()), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # progress is a courtesy to other processes' viewers: never a reason to stop a run


def read_progress(run_dir: str | os.PathLike) -> dict | None:
    """``progress.json`` of a run directory (None when absent or unreadable)."""
    try:
        record = json.loads((Path(run_dir) / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("phase"), str) else None
