"""Turn live engine events into the same records the run directory holds.

The model is fed one way whatever the source, so what the dashboard shows live is
what it shows when the run directory is opened later: the records are built by
:mod:`engine.run.records`, as the run-directory writer builds them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.run import records
from engine.run.jsonl import read_jsonl
from engine.run.progress import Progress
from engine.run.rundir import CONFIG, EVENTS, METRICS, SAMPLES
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


def load_history(model: RunModel, run_dir: str | Path, up_to_step: int) -> None:
    """Feed the model what ``run_dir`` holds up to ``up_to_step``, before a resumed run's
    engine events arrive: its charts then start at step 1, its events pane holds the
    earlier events and its elapsed time counts from the run's first record.

    The engine keeps exactly these records when it resumes (it drops those after the
    checkpoint's step, then trains those steps again), so nothing shows twice. The run's
    first config.yaml comes first, so adjustments read from the events know what they changed.
    """
    root = Path(run_dir)
    try:
        config = yaml.safe_load((root / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        config = None
    if isinstance(config, dict):
        model.config = config

    def kept(name: str) -> list[dict]:
        return [r for r in read_jsonl(root / name) if not isinstance(r.get("step"), int) or r["step"] <= up_to_step]

    model.feed(kept(METRICS), kept(SAMPLES)[-(model.samples.maxlen or 0):], kept(EVENTS))
    # How the earlier process ended is history now: the resumed run starts afresh.
    model.summary, model.error, model.traceback_path = {}, "", None
    model.set_state(RunState.STARTING.value, f"resuming from step {up_to_step}")
