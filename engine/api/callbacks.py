"""transformers' ``TrainerCallback`` hooks and ``TrainerState``, driven by the events the
engine publishes, so a TRL script's callbacks, progress bar and ``trainer.state`` work with
the engine's loop unchanged.

The engine publishes what happened (a run started, a step's metrics, a held-out evaluation, a
checkpoint, the run's end); :class:`CallbackBridge` subscribes to the run's Control and turns
each into the hooks transformers' ``Trainer`` calls at the same point, in the same order:

- ``on_train_begin`` when the run has loaded (``state.max_steps``, ``state.global_step`` set);
- ``on_step_begin`` when a step starts (``state.global_step`` is still the steps done before it);
- ``on_step_end`` when its update is done (``global_step`` counts it), then ``on_log``
  (every ``logging_steps``) and ``on_evaluate`` / ``on_save`` where that step evaluated or saved;
- ``on_train_end`` after the final model is saved.

``on_init_end``, ``on_epoch_*``, ``on_substep_end``, ``on_pre/post_optimizer_step``,
``on_prediction_step`` and ``on_predict`` are not called: the engine's loop has no such point
a callback could act on. Of ``TrainerControl``, ``should_training_stop`` stops the run at the
step's end (with a checkpoint, resumable) and ``should_save`` writes a checkpoint there;
``should_log`` / ``should_evaluate`` are not read (every step is logged, evaluation follows
``eval_steps``). Hooks run on the engine's thread between two steps, as in transformers.
"""

from __future__ import annotations

import math
from typing import Any

from engine.run.control import Control
from engine.run.events import EvalResult, Event, LogEvent, RunFailed, RunFinished, RunStarted, StepMetrics
from engine.run.progress import Progress


def default_callbacks(args: Any) -> list:
    """What transformers' Trainer adds by itself: a tqdm progress bar that prints each log
    line above it, or with ``disable_tqdm=True`` the log lines alone."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    return [PrinterCallback() if getattr(args, "disable_tqdm", None) else ProgressCallback()]


class CallbackBridge:
    """``state`` (a transformers ``TrainerState``) and ``callbacks``, fed by one run's events.

    ``args``: what hooks receive as ``args`` (the GRPOConfig given); ``logging_steps``: how
    often ``on_log`` is called (and ``state.log_history`` grows); ``objects``: the keyword
    arguments every hook receives (model, processing_class, optimizer, lr_scheduler...)."""

    def __init__(self, callbacks: list, args: Any, state: Any, logging_steps: int, objects: dict[str, Any]) -> None:
        from transformers import TrainerControl

        self.callbacks = callbacks
        self.args = args
        self.state = state
        self.control = TrainerControl()
        self.logging_steps = max(1, int(logging_steps))
        self.objects = objects
        self._run: Control | None = None
        self._begun = 0  # the newest step whose on_step_begin was called
        self._ended = 0
        self._pending_evals: list[EvalResult] = []
        self._saved: set[int] = set()
        self.error: str | None = None
        """A callback that raised: the run is stopped at the step's end and train() raises this."""

    def attach(self, control: Control) -> Any:
        """Listen to the run steered by ``control``; returns the function that stops it."""
        self._run = control
        return control.subscribe(self)

    # ------------------------------------------------------------------ events in
    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.state.max_steps = event.total_steps
            self.state.global_step = self._begun = self._ended = event.start_step
            self._call("on_train_begin")
        elif isinstance(event, Progress):
            if event.step > self._begun:
                self._begin(event.step)
        elif isinstance(event, StepMetrics):
            self._step_end(event)
        elif isinstance(event, EvalResult):
            if event.step > self._ended:  # evaluated within a step: heard after its on_step_end
                self._pending_evals.append(event)
            else:
                self._evaluate(event)
        elif isinstance(event, LogEvent) and event.category == "checkpoint" and event.level == "info":
            self._save(event.step)
        elif isinstance(event, RunFinished):
            self._train_end(event.summary)
        elif isinstance(event, RunFailed):
            self._close_bars()

    def _begin(self, step: int) -> None:
        self._begun = step
        self.state.global_step = step - 1
        self._call("on_step_begin")

    def _step_end(self, event: StepMetrics) -> None:
        if event.step > self._begun:
            self._begin(event.step)
        self.state.global_step = self._ended = event.step
        self._call("on_step_end")
        if event.step % self.logging_steps == 0 or event.step == self.state.max_steps:
            self._log({k: v for k, v in event.metrics.items() if _loggable(v)})
        pending, self._pending_evals = self._pending_evals, []
        for result in pending:
            self._evaluate(result)

    def _evaluate(self, event: EvalResult) -> None:
        metrics = {k if k.startswith("eval_") else "eval_" + k.removeprefix("eval/"): v
                   for k, v in event.metrics.items() if _loggable(v)}
        self._log(metrics)
        self._call("on_evaluate", metrics=metrics)

    def _save(self, step: int | None) -> None:
        if step is None or step in self._saved:
            return
        self._saved.add(step)
        self._call("on_save")

    def _train_end(self, summary: dict) -> None:
        runtime = float(summary.get("wall_time_s") or 0.0)
        done = self.state.global_step
        self._log({"train_runtime": runtime,
                   "train_steps_per_second": round(done / runtime, 3) if runtime > 0 else 0.0})
        self._call("on_train_end")

    def _log(self, logs: dict[str, Any]) -> None:
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self._call("on_log", logs=logs)

    # ------------------------------------------------------------------ hooks out
    def _call(self, hook: str, **kwargs: Any) -> None:
        control = self.control
        if self.error is not None:
            return
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is None:
                continue
            try:
                result = method(self.args, self.state, control, **self.objects, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the run stops with a checkpoint; train() says why
                self.error = f"callback {type(callback).__name__}.{hook} raised {type(exc).__name__}: {exc}"
                if self._run is not None:
                    self._run.stop()
                self._close_bars()
                return
            if result is not None:
                control = result
        self.control = control
        self._obey()

    def _obey(self) -> None:
        """What a callback asked through TrainerControl, as the run's own requests."""
        control, run = self.control, self._run
        if run is not None and control.should_training_stop:
            run.stop()
        if run is not None and control.should_save:
            run.checkpoint()
        control.should_training_stop = control.should_save = False
        control.should_log = control.should_evaluate = False

    def _close_bars(self) -> None:
        """A failed run ends no progress bar by itself: close them, as on_train_end would."""
        for callback in self.callbacks:
            bar = getattr(callback, "training_bar", None)
            if bar is not None:
                bar.close()
                callback.training_bar = None


def _loggable(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
