"""What a process training a run does on SIGTERM, SIGINT and SIGHUP.

A stop signal (SIGTERM; SIGINT too in a headless run) asks the run to stop at its next step
boundary, the one safe point: the engine checkpoints there and saves the final model, so
``grpo-tui resume RUN`` continues from that step and none is redone. A second stop signal
abandons the run at once (an event and the ``abandoned`` status record it): a checkpoint is
renamed into place only once whole, so the newest complete one stays whatever was being written.

SIGHUP means the terminal went away (SSH dropped, tmux closed). The run goes on: the
process's output moves to ``RUN_DIR/console.log``, where a ``--detach`` run writes it.

Handlers only note what arrived (and move file descriptors off the dead terminal, which
takes no lock); the main thread's loop acts on it. A handler that took a lock the code it
interrupted holds (the Control's, a file's) would deadlock the process.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from engine.run.checkpoints import resume_point
from engine.run.events import Event, LogEvent, RunState, StateChanged

CONSOLE_LOG = "console.log"
TERMINAL_CLOSED = "terminal closed: training goes on in the background"


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """The shell's code for a process ended by ``signum``: 128 + its number (SIGINT 130, SIGTERM 143)."""
    return 128 + signum


def send_output_to(path: str | os.PathLike | None) -> None:
    """Point stdin at /dev/null and stdout and stderr at ``path`` (appended; /dev/null when
    None). Done on the file descriptors, so threads, C code and buffered writers all follow:
    on a terminal that is gone their writes fail with EIO or block."""
    null = os.open(os.devnull, os.O_RDWR)
    target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path is not None else null
    for fd, source in ((0, null), (1, target), (2, target)):
        os.dup2(source, fd)
    for fd in {null, target}:
        os.close(fd)


_held: Signals | None = None


def hold_from_start() -> None:
    """For a rank of a multi-process run: keep SIGINT, SIGTERM and SIGHUP from the process's first
    moments (the launcher passes them on at once, and importing torch and loading a model take
    a while), for the :class:`Signals` the run installs to act on; left to their default actions
    they would kill the rank, or raise KeyboardInterrupt inside an import."""
    global _held
    _held = Signals().install((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))


class Signals:
    """The stop signals and the hangup the main thread received, for its loop to act on.

    ``notify(signum)``, when given, is called from the handler too: the app uses it to wake
    its event loop. Install and restore from the main thread only (Python's rule)."""

    def __init__(self, notify: Callable[[int], None] | None = None) -> None:
        self.notify = notify
        self.stops: list[int] = []  # stop signals, in the order they came
        self.hangup = False  # the terminal went away (output already moved off it)
        self._previous: dict[int, object] = {}

    def install(self, signums: Iterable[int]) -> Signals:
        global _held
        if _held is not None and _held is not self:  # what came before the run could act: its own now
            self.stops, self.hangup, _held = list(_held.stops), _held.hangup, None
        for signum in signums:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @property
    def stop_signal(self) -> int | None:
        """The first stop signal, or None."""
        return self.stops[0] if self.stops else None

    @property
    def abandon(self) -> bool:
        """A second stop signal came: end now, without waiting for the step boundary."""
        return len(self.stops) > 1

    def _handle(self, signum: int, frame) -> None:
        if signum == signal.SIGHUP:
            if not self.hangup:
                self.hangup = True
                send_output_to(None)  # at once: the next write to the terminal would fail or block
        else:
            self.stops.append(signum)
        if self.notify is not None:
            self.notify(signum)


def terminal_closed_event(step: int) -> LogEvent:
    """The event that records the terminal going away (``category`` "detach", as a handover)."""
    return LogEvent(level="warning", category="detach", message=TERMINAL_CLOSED, step=step,
                    data={"pid": os.getpid()})


def announce_stop(control, signum: int, step: int, say: Callable[[str], None]) -> None:
    """Ask for the stop at the next step boundary and say so, on screen and in the events."""
    name = signal_name(signum)
    say(f"{name}: stopping after this step, checkpointing and saving the final model "
        f"({name} or Ctrl-C again abandons the run; its newest complete checkpoint stays)…")
    control.publish(LogEvent(level="warning", category="status", step=step,
                             message=f"{name} received: stopping at the next step boundary with a checkpoint",
                             data={"signal": name}))
    control.stop()


def abandon_events(run_dir: str | os.PathLike, step: int, cause: str = "") -> list[Event]:
    """What records a run left at once (a second stop signal, Abandon in the quit dialog):
    an event naming the step and the checkpoint a resume continues from, then the terminal
    ``abandoned`` status that ``grpo-tui runs``, the launcher and the dashboard read."""
    at = resume_point(Path(run_dir))
    last = f"last checkpoint: step {at}" if at is not None else "no complete checkpoint"
    message = f"run abandoned at step {step}{' ' + cause if cause else ''} ({last})"
    return [LogEvent(level="warning", category="abandon", step=step, message=message,
                     data={"checkpoint_step": at, **({"cause": cause} if cause else {})}),
            StateChanged(state=RunState.ABANDONED, message=message)]


def abandon(control, run_dir: str | os.PathLike, step: int, cause: str = "") -> str:
    """Publish :func:`abandon_events` (the run-directory writer, the Control's first
    subscriber, has them on disk when this returns); returns the message."""
    events = abandon_events(run_dir, step, cause)
    for event in events:
        control.publish(event)
    return events[0].message


def wait_for_engine(thread: threading.Thread, control, run_dir: str | os.PathLike, step: Callable[[], int],
                    signals: Signals, say: Callable[[str], None],
                    on_hangup: Callable[[], None] | None = None, announced: bool = False) -> int | None:
    """Wait for the engine ``thread`` to end, acting on the signals that arrive: the first
    stop signal asks for a stop (:func:`announce_stop`), a second abandons the run — its
    event is written and the process exits at once with :func:`exit_code`; a hangup calls
    ``on_hangup`` once (``announced``: the first stop signal was acted on already). Returns
    the stop signal that ended the run, or None."""
    hung_up = False
    while thread.is_alive():
        thread.join(0.2)
        if signals.hangup and not hung_up:
            hung_up = True
            if on_hangup is not None:
                on_hangup()
        if signals.stops and not announced:
            announced = True
            announce_stop(control, signals.stops[0], step(), say)
        if signals.abandon:
            # a headless run prints the event as it prints every warning
            abandon(control, run_dir, step(), f"by a second {signal_name(signals.stops[-1])}")
            sys.stdout.flush()
            sys.stderr.flush()
            # Not a normal exit: interpreter shutdown would wait on, or tear down under, an
            # engine thread that may be inside a CUDA call or a checkpoint write.
            os._exit(exit_code(signals.stops[-1]))
    return signals.stop_signal
