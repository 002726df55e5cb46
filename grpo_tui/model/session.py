"""A training run the app started: the engine's Trainer on its thread plus its Control.

The engine reaches the app only through the Control subscription, whose callback
posts a message (thread-safe and non-blocking); nothing here touches trainer internals.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from textual.message import Message

from engine.run.events import RunState


class EngineEvent(Message):
    """One engine event, delivered on the UI thread."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class LiveRun:
    """Trainer + Control for one run; ``start`` launches the engine thread."""

    def __init__(self, cfg: Any, post: Callable[[Message], bool], resume_dir: str | Path | None = None,
                 on_fault: str = "pause") -> None:
        """A new run of ``cfg``, or — with ``resume_dir`` — the continuation of that run from its
        newest complete checkpoint (``cfg`` is then ignored: the checkpoint's config is used).
        ``on_fault``: what a repeated fault does (see engine.training.faults)."""
        from engine.run.control import Control
        from engine.training.trainer import Trainer

        self.control = Control()
        self._post = post
        self._unsubscribe = self.control.subscribe(self._forward)
        if resume_dir is not None:
            self.trainer = Trainer.resume(resume_dir, control=self.control, on_fault=on_fault)
        else:
            self.trainer = Trainer(cfg, control=self.control, on_fault=on_fault)
        self.cfg = self.trainer.cfg
        self.run_dir = Path(self.trainer.run_dir)
        self.resume_step: int | None = None  # the checkpoint's step, where a resumed run goes on
        if self.trainer.resume_from is not None:
            from engine.run.checkpoints import checkpoint_step

            self.resume_step = checkpoint_step(self.trainer.resume_from)
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

    @property
    def step(self) -> int:
        """Optimizer steps done."""
        return self.trainer.step

    @property
    def summary(self) -> dict[str, Any]:
        """How the run ended (``steps``, ``max_steps``; ``error`` when it failed); empty before."""
        return self.trainer.summary

    def detach(self) -> None:
        self._unsubscribe()


class RemoteControl:
    """The controls of a run trained by another process, sent through its run directory's
    command channel (``engine.run.channel``); the same methods as ``engine.run.control.Control``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def stop(self) -> None:
        self._send("stop")

    def checkpoint(self) -> None:
        self._send("checkpoint")

    def reload_rewards(self) -> None:
        self._send("reload_rewards")

    def adjust(self, **changes: Any) -> None:
        self._send("adjust", **changes)

    @property
    def paused_requested(self) -> bool:
        from engine.run.channel import read_heartbeat

        return (read_heartbeat(self.run_dir) or {}).get("state") == RunState.PAUSED

    def _send(self, command: str, **args: Any) -> None:
        from engine.run.channel import send_command

        send_command(self.run_dir, command, **args)


class AttachedRun:
    """A run another process trains (``grpo-tui train --detach``): the dashboard follows its
    files and its controls reach the process through the run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        if not (self.run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"no config.yaml in {self.run_dir}")
        self._cfg: Any = None
        self.control = RemoteControl(self.run_dir)

    @property
    def cfg(self) -> Any:
        """The run's config, read when first needed (the adjust form, the reward bench):
        validating it imports the model libraries, which would hold up the first frame."""
        if self._cfg is None:
            from engine.config.presets import config_from_yaml

            path = self.run_dir / "config.yaml"
            self._cfg = config_from_yaml(path.read_text(encoding="utf-8"), check_paths=False, source=str(path))
        return self._cfg

    @property
    def state(self) -> str:
        from engine.run.listing import summarize_run

        return summarize_run(self.run_dir).state

    @property
    def alive(self) -> bool:
        """A process trains the run now (not finished, stopped, abandoned, failed or crashed)."""
        from engine.run.listing import summarize_run

        return summarize_run(self.run_dir).live

    def detach(self) -> None:
        """Leaving the dashboard leaves the run as it is: it belongs to its own process."""
