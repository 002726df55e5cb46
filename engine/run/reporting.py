"""Logging integrations (``report_to``: accelerate's trackers, see engine.run.trackers) and
TRL-style completion logs.

Each reporter is a Control subscriber: ``control.subscribe(reporter)``. Subscribers run on
the engine thread, so a reporter only puts the event on its own queue; a worker thread does
the slow part (importing the package, opening files, network). A reporter never raises:
the first failure is kept as a one-line message (``take_error``) and the reporter turns
itself off, because a broken dashboard integration must not cost a training run.

Optional packages are imported only when asked for, and a missing one is named with the
command that installs it (``check_report_to``, used by config validation).
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
import importlib.util
import math
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from engine.run.events import Event, RunFailed, RunFinished, StepSamples

INTEGRATIONS = ("tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab")
"""Names accepted in ``report_to``: the trackers accelerate supports (engine.run.trackers)."""

PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX")}
"""The modules that make an integration usable (any one of them); by default the one of its name."""

INSTALL_HINTS = {name: f"pip install {name}" for name in INTEGRATIONS}

COMPLETIONS_DIR = "completions"
QUEUE_SIZE = 1000
"""Events a reporter holds before it drops new ones (a stalled upload must not grow memory)."""


class ReportingError(ValueError):
    """An integration that cannot start; ``str(e)`` is one line for the user."""


# --------------------------------------------------------------------------- checks


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_integrations() -> list[str]:
    """The integrations whose package is importable here (TRL's ``report_to="all"``)."""
    return [name for name in INTEGRATIONS if _integration_installed(name)]


def _integration_installed(name: str) -> bool:
    return any(_installed(module) for module in PACKAGES.get(name, (name,)))


def check_report_to(names: list[str], *, check_installed: bool = True) -> list[str]:
    """Problems with a ``report_to`` list, one line each (empty when all is well).

    Unknown names get a did-you-mean; a missing package names its ``pip install``. Cheap:
    looks packages up without importing them.
    """
    problems: list[str] = []
    for i, name in enumerate(names):
        if name not in INTEGRATIONS:
            close = difflib.get_close_matches(str(name), INTEGRATIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"report_to[{i}]: unknown integration {name!r}{hint}; choose from {', '.join(INTEGRATIONS)}")
        elif check_installed and not _integration_installed(name):
            problems.append(f"report_to[{i}]: {name} is not installed; run `{INSTALL_HINTS[name]}`")
    return problems


# --------------------------------------------------------------------------- the base


class Reporter(ABC):
    """A subscriber that hands events to a worker thread and never raises.

    Subclasses implement ``handle(event)`` (on the worker thread) and ``close_files()``.
    ``RunFinished`` / ``RunFailed`` end the worker after the last events are handled.
    """

    name = "reporter"

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._error: str | None = None
        self._error_taken = False
        self._disabled = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._work, name=f"report-{self.name}", daemon=True)
        self._thread.start()

    # -- engine thread ---------------------------------------------------
    def __call__(self, event: Event) -> None:
        if self._disabled:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    # -- any thread --------------------------------------------------------
    @property
    def error(self) -> str | None:
        """The failure that turned this reporter off, if any."""
        return self._error

    def take_error(self) -> str | None:
        """The failure message, the first time it is asked for; None otherwise."""
        if self._error is None or self._error_taken:
            return None
        self._error_taken = True
        return self._error

    def close(self, timeout: float | None = 30.0) -> None:
        """Wait (up to ``timeout`` s) for queued events to be written, then stop the worker."""
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)

    # -- worker thread -----------------------------------------------------
    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                break
            if not self._disabled:
                try:
                    self.handle(event)
                except BaseException as exc:  # noqa: BLE001 - reported once, never raised
                    self._fail(exc)
            if isinstance(event, (RunFinished, RunFailed)):
                break
        try:
            self.close_files()
        except BaseException as exc:  # noqa: BLE001
            if not self._disabled:
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        what = message if isinstance(exc, ReportingError) else f"{type(exc).__name__}: {message}".rstrip(": ")
        self._error = f"{self.name} logging stopped: {what}"
        self._disabled = True

    @abstractmethod
    def handle(self, event: Event) -> None:
        """Write one event (runs on the reporter's worker thread)."""

    def close_files(self) -> None:
        pass


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics dict (booleans, None, NaN and text left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


# --------------------------------------------------------------------------- completion logs


def completion_rows(step: int, groups: list[dict]) -> list[dict]:
    """One row per completion of the logged groups: step, prompt, completion, one column per
    reward function (None where it did not apply or failed), advantage — TRL's columns."""
    names: list[str] = []
    for group in groups:
        for completion in group.get("completions", []):
            for name in completion.get("rewards") or {}:
                if name not in names:
                    names.append(name)
    rows = []
    for group in groups:
        for completion in group.get("completions", []):
            rewards = completion.get("rewards") or {}
            rows.append({
                "step": step,
                "prompt": group.get("prompt"),
                "completion": completion.get("text"),
                **{name: rewards.get(name) for name in names},
                "advantage": completion.get("advantage"),
            })
    return rows


def completions_path(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / COMPLETIONS_DIR / f"completions_{step:05d}.parquet"


class CompletionLogReporter(Reporter):
    """``completions/completions_{step:05d}.parquet`` in the run directory, as TRL writes them:
    columns step, prompt, completion, one per reward function, advantage. The rows are the
    groups each step logs (``log_completions_groups`` of them)."""

    name = "completions"

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        super().__init__()

    def handle(self, event: Event) -> None:
        if not isinstance(event, StepSamples):
            return
        rows = completion_rows(event.step, event.groups)
        if not rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = completions_path(self.run_dir, event.step)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        os.replace(tmp, path)  # readers never see half a file


# --------------------------------------------------------------------------- building


def make_reporters(cfg, run_dir: str | os.PathLike) -> list[Reporter]:
    """The reporters a config asks for (``report_to``, ``log_completions``), ready to subscribe.

    Raises ReportingError (one line naming the ``pip install``) when an integration's package
    is missing, so a run fails before training rather than losing its logs silently.
    """
    names = list(getattr(cfg, "report_to", None) or [])
    problems = check_report_to(names)
    if problems:
        raise ReportingError("; ".join(problems))
    reporters: list[Reporter] = []
    if getattr(cfg, "log_completions", False):
        reporters.append(CompletionLogReporter(run_dir))
    from engine.run.trackers import TrackerReporter

    for name in dict.fromkeys(names):
        reporters.append(TrackerReporter(name, run_dir, getattr(cfg, "run_name", None),
                                         getattr(cfg, "log_completions", False)))
    return reporters


def take_errors(reporters: list[Reporter]) -> list[str]:
    """New failure messages from the reporters (each reported once), for the events log."""
    return [message for r in reporters if (message := r.take_error())]


def close_reporters(reporters: list[Reporter], timeout: float = 30.0) -> None:
    """Wait for every reporter to write what it holds (call once the run has ended)."""
    for r in reporters:
        r.close(timeout)
