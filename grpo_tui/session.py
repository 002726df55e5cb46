"""A training run the app started: the engine's Trainer on its thread plus its Control.

The engine reaches the app only through the Control subscription, whose callback
posts a message (thread-safe and non-blocking); nothing here touches trainer internals.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from textual.message import Message


class EngineEvent(Message):
    """One engine event, delivered on the UI thread."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class LiveRun:
    """Trainer + Control for one run; ``start`` launches the engine thread."""

    def __init__(self, cfg: Any, post: Callable[[Message], bool]) -> None:
        from engine.control import Control
        from engine.trainer import Trainer

        self.cfg = cfg
        self.control = Control()
        self._post = post
        self._unsubscribe = self.control.subscribe(self._forward)
        self.trainer = Trainer(cfg, control=self.control)
        self.run_dir = Path(self.trainer.run_dir)
        self.thread: threading.Thread | None = None

    def _forward(self, event: Any) -> None:
        self._post(EngineEvent(event))

    def start(self) -> None:
        self.thread = self.trainer.start()

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def state(self) -> str:
        state = self.control.state
        return state.value if hasattr(state, "value") else str(state)

    def detach(self) -> None:
        self._unsubscribe()
