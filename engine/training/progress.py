"""The trainer's side of step progress: collaborators say which phase a step is in and how
far it has got; :class:`StepProgress` turns that into :class:`~engine.run.progress.Progress`
events, at most a few a second, so a 5-minute step is visibly alive and a 70 ms step costs
next to nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.run.progress import Progress, first_step_eta, phase_fraction

MIN_INTERVAL_S = 0.25  # between two progress events, unless the run is slow (below)
SLOW_STEP_S = 1.0  # steps at least this long report every phase as it starts


class StepProgress:
    """Where the current step stands. ``publish`` sends an event (the run's publisher);
    ``pending()`` names the requests waiting for the step's end; ``total_steps()`` the run's
    length (adjustable); ``clock`` is the wall clock (epoch seconds)."""

    def __init__(self, publish: Callable[[Progress], None], pending: Callable[[], list[str]],
                 total_steps: Callable[[], int], clock: Callable[[], float] = time.time) -> None:
        self._publish, self._pending, self._total_steps, self._clock = publish, pending, total_steps, clock
        self.step = 0
        self.step_started = 0.0
        self.phase = ""
        self.phase_started = 0.0
        self.done = self.total = 0.0
        self.unit = self.detail = ""
        self.done_phases_s = 0.0  # this step's finished phases
        self.steps_timed = 0  # steps this process has seen end (the ETA then comes from step times)
        self.last_step_s = 0.0
        self._sent_at = -1e9

    def start_step(self, step: int) -> None:
        self.step, self.step_started = step, self._clock()
        self.phase, self.done_phases_s = "", 0.0

    def end_step(self) -> None:
        """The step's metrics are out: its progress is over."""
        self.last_step_s = self._clock() - self.step_started
        self.steps_timed += 1
        self.phase = ""

    def start(self, phase: str, total: float = 0.0, unit: str = "", detail: str = "") -> None:
        """Phase ``phase`` begins (``total`` ``unit`` to do; 0 when unknown)."""
        now = self._clock()
        if self.phase:
            self.done_phases_s += now - self.phase_started
        self.phase, self.phase_started = phase, now
        self.done, self.total, self.unit, self.detail = 0.0, float(total), unit, detail
        slow = self.steps_timed == 0 or self.last_step_s >= SLOW_STEP_S
        self._send(force=slow)

    def advance(self, done: float, detail: str | None = None) -> None:
        """The current phase has done ``done`` of its total."""
        self.done = float(done)
        if detail is not None:
            self.detail = detail
        self._send()

    def generation(self, position: int, max_new_tokens: int, sampled: int, finished: int, rows: int) -> None:
        """The generation backend's callback (:data:`engine.rollout.backend.GenerationProgress`)."""
        if self._clock() - self._sent_at < MIN_INTERVAL_S:
            return  # the common case, per decoded token: only a clock read
        elapsed = max(1e-6, self._clock() - self.phase_started)
        self.total = float(max_new_tokens)
        self.advance(position, f"{finished}/{rows} finished · {sampled / elapsed:,.0f} tok/s")

    def _send(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._sent_at < MIN_INTERVAL_S:
            return
        self._sent_at = now
        self._publish(Progress(
            step=self.step, phase=self.phase, done=self.done, total=self.total, unit=self.unit,
            detail=self.detail, phase_started=self.phase_started, step_started=self.step_started,
            eta_s=self._eta(now), pending=self._pending(), time=now,
        ))

    def _eta(self, now: float) -> float | None:
        """Before this process has timed a whole step: from the phase rates (see
        :func:`~engine.run.progress.first_step_eta`); after, the step metrics carry the ETA."""
        if self.steps_timed or self.step == 0:  # step 0: the held-out evaluation before training
            return None
        steps_left = max(1, self._total_steps() - self.step + 1)
        return first_step_eta(self.done_phases_s, now - self.phase_started, phase_fraction(self.done, self.total),
                              steps_left)


class NoProgress:
    """What collaborators get when nobody listens (tests, tools that drive one piece)."""

    def start(self, phase: str, total: float = 0.0, unit: str = "", detail: str = "") -> None:
        pass

    def advance(self, done: float, detail: str | None = None) -> None:
        pass

    generation = None  # the backend is then given no callback
