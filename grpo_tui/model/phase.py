"""What the run is doing right now, as one line of the header: the phase of the step under way
and its progress, what waits for the step's end, or why the run is not stepping.

A step of a large model takes minutes, and its metrics come only at its end; this line is
what shows the run alive in between. No Textual here: the header draws the view.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.run.events import RunState
from engine.run.progress import PHASES, phase_fraction

from grpo_tui.model.run_model import RunModel

PENDING = {"stop": "stopping after this step", "pause": "pausing after this step"}

LIVE_STATES = (RunState.STARTING, RunState.RUNNING, RunState.PAUSED, RunState.CHECKPOINTING, RunState.STOPPING)


@dataclass(frozen=True)
class PhaseView:
    """``waiting``: what waits for the step's end (``pausing after this step``); ``label``:
    the phase (``step 3 · generating``) or the state's own words; ``fraction`` 0…1 when the
    phase's size is known; ``counts`` (``312/1024 tokens``) and ``detail`` its figures;
    ``elapsed_s`` the time in the phase."""

    label: str
    waiting: str = ""
    fraction: float | None = None
    counts: str = ""
    detail: str = ""
    elapsed_s: float | None = None


def phase_view(model: RunModel, now: float) -> PhaseView | None:
    """The line for ``model`` at ``now`` (epoch seconds); None when the run is not live."""
    if model.state not in LIVE_STATES:
        return None
    current = model.current_progress()
    if model.state not in (RunState.RUNNING, RunState.STARTING) or model.state == RunState.STARTING and current is None:
        return PhaseView(label=model.state_message or model.state, elapsed_s=None)
    waiting = " and ".join(PENDING[r] for r in model.pending())
    if current is None:
        return PhaseView(label=f"step {model.step} done", waiting=waiting)
    done, total = float(current.get("done") or 0), float(current.get("total") or 0)
    unit = str(current.get("unit") or "")
    counts = "" if total <= 0 else f"token {done:.0f}/{total:.0f}" if unit == "tokens" else f"{done:.0f}/{total:.0f} {unit}"
    started = current.get("phase_started")
    phase = str(current.get("phase") or "")
    step = current.get("step")
    label = f"step {step} · {PHASES.get(phase, phase)}" if step else PHASES.get(phase, phase) + " (before training)"
    return PhaseView(
        label=label, waiting=waiting, fraction=phase_fraction(done, total) if total > 1 else None, counts=counts,
        detail=str(current.get("detail") or ""),
        elapsed_s=max(0.0, now - started) if isinstance(started, (int, float)) and started > 0 else None,
    )
