"""``report_to`` through accelerate's trackers, with the metric names HF's Trainer writes.

Every integration accelerate supports works the same way here: the tracker class is accelerate's
(``accelerate.tracking.LOGGER_TYPE_TO_CLASS``), built with the run's names and folders, started
on the reporter's worker thread, handed the config once and then the metrics of each step and
evaluation. Names follow HF's ``rewrite_logs``: training metrics under ``train/`` (``train/reward``,
``train/rewards/accuracy/mean``), evaluations under ``eval/``, so runs overlay with TRL's.

W&B: the run id is kept in ``<run dir>/trackers.json`` and passed back with ``resume="allow"``, so
``grpo-tui resume`` continues the same W&B run; its files go to ``$WANDB_DIR`` when that is set,
else into the run directory.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from engine.run.events import Event, EvalResult, RunStarted, StepMetrics, StepSamples
from engine.run.reporting import Reporter, ReportingError, _scalars, completion_rows

PROJECT = "grpo-tui"
"""Project (W&B, trackio, comet, swanlab) or experiment (MLflow) a run logs into, unless the
tracker's own environment variable names another (WANDB_PROJECT, MLFLOW_EXPERIMENT_NAME)."""

STATE_FILE = "trackers.json"
"""What a tracker needs to continue its run on resume (W&B's run id)."""


def hf_names(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite scalars of ``metrics`` under HF's names: ``eval/…`` as they are (``eval_x`` →
    ``eval/x``), everything else under ``train/``."""
    out = {}
    for key, value in _scalars(metrics).items():
        if key.startswith("eval/"):
            out[key] = value
        elif key.startswith("eval_"):
            out["eval/" + key[len("eval_"):]] = value
        else:
            out["train/" + key] = value
    return out


def flat_config(config: dict, prefix: str = "") -> dict[str, Any]:
    """The config as one level of ``a.b`` keys holding numbers, text or booleans (TensorBoard's
    hparams take nothing else; lists and None become their text)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def _read_state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def wandb_run_id(run_dir: str | os.PathLike) -> str:
    """The W&B run id of this run directory: the stored one, or a new one stored before W&B starts
    (so a run that fails while starting still resumes into the same W&B run)."""
    run_dir = Path(run_dir)
    state = _read_state(run_dir)
    run_id = (state.get("wandb") or {}).get("id")
    if not run_id:
        run_id = secrets.token_hex(4)
        state["wandb"] = {"id": run_id}
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, run_dir / STATE_FILE)
    return run_id


def tracker_class(name: str):
    """accelerate's tracker class for ``name``; ReportingError when this accelerate has none."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    cls = LOGGER_TYPE_TO_CLASS.get(name)
    if cls is None:
        raise ReportingError(f"this accelerate has no {name} tracker; run `pip install -U accelerate`")
    return cls


def make_tracker(name: str, run_dir: str | os.PathLike, run_name: str):
    """accelerate's tracker for ``name``, built for this run (not started)."""
    cls, run_dir = tracker_class(name), Path(run_dir)
    if name == "tensorboard":
        return cls("tensorboard", str(run_dir))  # event files in <run dir>/tensorboard
    if name == "wandb":
        where = {} if os.environ.get("WANDB_DIR") else {"dir": str(run_dir)}
        return cls(os.environ.get("WANDB_PROJECT", PROJECT), name=run_name, id=wandb_run_id(run_dir),
                   resume="allow", **where)
    if name == "mlflow":
        return cls(experiment_name=PROJECT, run_name=run_name)
    if name == "aim":
        return cls(run_name, str(run_dir))  # the Aim repository in the run directory
    if name == "dvclive":
        return cls(run_name, dir=str(run_dir / "dvclive"))
    if name == "trackio":
        return cls(PROJECT, name=run_name)
    if name == "swanlab":
        return cls(PROJECT, experiment_name=run_name)
    # accelerate's convention for the rest (comet_ml, clearml, registered trackers)
    return cls(PROJECT, str(run_dir)) if getattr(cls, "requires_logging_directory", False) else cls(PROJECT)


class TrackerReporter(Reporter):
    """One ``report_to`` integration: an accelerate tracker fed from the run's events."""

    def __init__(self, name: str, run_dir: str | os.PathLike, run_name: str | None = None,
                 log_completions: bool = False) -> None:
        self.name = name
        self.run_dir = Path(run_dir)
        self.run_name = run_name or self.run_dir.name
        self.log_completions = log_completions
        self.tracker = None
        super().__init__()

    def _start(self, config: dict | None = None):
        if self.tracker is None:
            tracker = make_tracker(self.name, self.run_dir, self.run_name)
            # built only on the main process: accelerate need not ask (which would set up its state)
            tracker.main_process_only = False
            if hasattr(tracker, "start"):  # accelerate before 1.4 started trackers when building them
                tracker.start()
            self.tracker = tracker
            if config:
                tracker.store_init_configuration(flat_config(config))
        return self.tracker

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._start(event.config)
        elif isinstance(event, (StepMetrics, EvalResult)):
            metrics = event.metrics
            if isinstance(event, StepMetrics):  # evaluations arrive as EvalResult (step 0 included)
                metrics = {k: v for k, v in metrics.items() if not k.startswith(("eval/", "eval_"))}
            values = hf_names(metrics)
            if self.name == "wandb":
                values["train/global_step"] = event.step
            if values:
                self._start().log(values, step=event.step)
        elif isinstance(event, StepSamples) and self.log_completions:
            tracker = self._start()
            rows = completion_rows(event.step, event.groups)
            if rows and hasattr(tracker, "log_table"):
                columns = list(rows[0])
                tracker.log_table("completions", columns=columns, data=[[r[c] for c in columns] for r in rows],
                                  step=event.step)

    def close_files(self) -> None:
        if self.tracker is not None:
            self.tracker.finish()
