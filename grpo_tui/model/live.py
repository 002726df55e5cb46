"""Turn live engine events into the same records the run directory holds.

The model is fed one way whatever the source, so what the dashboard shows live is
what it shows when the run directory is opened later: the records are built by
:mod:`engine.run.records`, as the run-directory writer builds them.
"""

from __future__ import annotations

from engine.run import records
from engine.run.progress import Progress
from engine.run.events import (
    Event, LogEvent, RunFailed, RunFinished, RunStarted, RunState, StateChanged, StepMetrics, StepSamples,
)

from grpo_tui.model.run_model import RunModel, ended_state


def apply_event(model: RunModel, event: Event) -> None:
    """Apply one engine event to the model (on the UI thread)."""
    t = getattr(event, "time", None)
    if isinstance(event, RunStarted):
        model.set_run_info(
            run_dir=event.run_dir,
            config=event.config,
            total_steps=event.total_steps,
            model=event.model,
            device=event.device,
            start_step=event.start_step,
            time=t,
        )
    elif isinstance(event, StateChanged):
        model.add_event(records.from_state(event, model.step))
    elif isinstance(event, Progress):
        model.set_progress(event.record())
    elif isinstance(event, StepMetrics):
        model.add_metrics(records.from_metrics(event))
    elif isinstance(event, StepSamples):
        model.add_samples(records.from_samples(event))
    elif isinstance(event, LogEvent):
        model.add_event(records.from_log(event))
    elif isinstance(event, RunFinished):
        # The engine also logs a "summary" event (the events pane line); keep the data.
        model.summary = dict(event.summary)
        if not model.is_terminal:  # the status before it (finished or stopped) already says how it ended
            model.set_state(ended_state(event.summary), t=t)
    elif isinstance(event, RunFailed):
        model.error = event.error
        model.traceback_path = event.traceback_path
        model.set_state(RunState.FAILED.value, event.error, t)
    # EvalResult: the engine logs an "eval" event with the same metrics, handled above.
