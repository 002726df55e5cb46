"""The thread-safe bridge between a running trainer and whoever watches it.

Commands go in (pause, resume, stop, checkpoint, adjust, reload_rewards) from any thread; the trainer
applies them at the next step boundary, which is the only point where changing the
optimizer or the sampling parameters is safe. Events come out: the trainer publishes
them and every subscriber's callback is called on the engine thread, so callbacks must
not block (the dashboard's callback only does ``App.post_message``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.run.events import Event, RunState, StateChanged, Subscriber


# ---------------------------------------------------------------- commands


@dataclass
class _Pending:
    checkpoint: bool = False
    stop: bool = False
    handover: bool = False
    reload_rewards: bool = False
    fail: str | None = None  # a fault ends the run: the one line that says why
    adjustments: dict[str, Any] = field(default_factory=dict)


class Control:
    """Commands in, events out. Every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resume = threading.Event()
        self._resume.set()
        self._pending = _Pending()
        self._subscribers: list[Subscriber] = []
        self._state = RunState.STARTING
        self._wake = threading.Event()

    # -- commands (any thread) -------------------------------------------
    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()
        self._wake.set()

    def stop(self) -> None:
        with self._lock:
            self._pending.stop = True
        self._resume.set()
        self._wake.set()

    def checkpoint(self) -> None:
        with self._lock:
            self._pending.checkpoint = True
        self._wake.set()

    def handover(self) -> None:
        """Stop at the next step boundary with a checkpoint and no final model, so another
        process can continue the run (``grpo-tui resume``): how a dashboard detaches."""
        with self._lock:
            self._pending.handover = True
            self._pending.stop = True
        self._resume.set()
        self._wake.set()

    def reload_rewards(self) -> None:
        """Re-import the reward plugins from their files at the next step boundary (a fixed
        plugin takes effect without restarting the run)."""
        with self._lock:
            self._pending.reload_rewards = True
        self._wake.set()

    def fail(self, reason: str) -> None:
        """End the run at the next step boundary as failed, with a checkpoint, for ``reason``
        (one line): what a fault does when nobody is there to fix it and resume."""
        with self._lock:
            self._pending.fail = reason
        self._resume.set()
        self._wake.set()

    @property
    def fail_requested(self) -> str | None:
        with self._lock:
            return self._pending.fail

    @property
    def handover_requested(self) -> bool:
        with self._lock:
            return self._pending.handover

    def adjust(self, /, **changes: Any) -> None:
        """Queue hyperparameter changes; the trainer validates and applies them at the next step."""
        with self._lock:
            self._pending.adjustments.update(changes)
        self._wake.set()

    @property
    def paused_requested(self) -> bool:
        return not self._resume.is_set()

    @property
    def stop_requested(self) -> bool:
        with self._lock:
            return self._pending.stop

    @property
    def state(self) -> RunState:
        return self._state

    # -- events ----------------------------------------------------------
    def subscribe(self, callback: Subscriber, first: bool = False) -> Callable[[], None]:
        """Register a callback for every event; returns a function that unsubscribes it.
        ``first``: called before every subscriber so far (the run-directory writer: a line is
        on disk before any viewer hears of its event)."""
        with self._lock:
            if first:
                self._subscribers.insert(0, callback)
            else:
                self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Called by the engine. A subscriber that raises is dropped, never the run."""
        if isinstance(event, StateChanged):
            self._state = event.state
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a broken viewer must not kill training
                with self._lock:
                    if callback in self._subscribers:
                        self._subscribers.remove(callback)

    # -- engine side -----------------------------------------------------
    def take_checkpoint_request(self) -> bool:
        with self._lock:
            wanted, self._pending.checkpoint = self._pending.checkpoint, False
            return wanted

    def take_reload_request(self) -> bool:
        with self._lock:
            wanted, self._pending.reload_rewards = self._pending.reload_rewards, False
            return wanted

    def take_adjustments(self) -> dict[str, Any]:
        with self._lock:
            changes, self._pending.adjustments = self._pending.adjustments, {}
            return changes

    def wait_for_request(self, timeout: float) -> None:
        """Block the engine thread (while paused) until a request arrives — resume, stop,
        checkpoint, adjust — or ``timeout`` seconds pass."""
        self._wake.wait(timeout)
        self._wake.clear()
