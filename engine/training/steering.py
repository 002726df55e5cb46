"""Steering a run while it trains: pause, stop, hand over, checkpoint now, adjust, reload
the reward plugins, and end a run a fault failed.

Requests arrive on the Control from any thread (the dashboard, another process through the
command channel) and are taken here only between two steps, the one point where changing
the optimizer or the sampling settings is safe. With several processes rank 0 takes them
and every rank gets the same, so all act at the same step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.config.checks import validate_adjustment
from engine.config.schema import ConfigError
from engine.run.events import RunState
from engine.run.reporting import take_errors
from engine.training.faults import REWARD, RunFault, reload_rewards


@dataclass
class Requests:
    """The viewer's requests taken at a step boundary."""

    adjust: dict[str, Any] = field(default_factory=dict)  # hyperparameter changes, not yet validated
    checkpoint: bool = False  # checkpoint now
    stop: bool = False  # stop after this step (and save the final model, unless handing over)
    handover: bool = False  # stop at a checkpoint, without a final model: another process resumes
    pause: bool = False  # wait here until resumed (never together with stop)
    reload_rewards: bool = False  # re-import the reward plugins from their files
    fail: str | None = None  # a fault ends the run (on_fault="fail"): checkpoint, then fail with this line
    checkpointed: bool = False  # the checkpoint asked for was written


def model_context(model) -> int | None:
    """The model's context length (``max_position_embeddings``), when its config says."""
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


class Steering:
    """Applies the viewer's requests between steps.

    ``parts``: the run's :class:`~engine.training.setup.RunParts` (what adjustments change);
    ``state``: its :class:`~engine.training.checkpointing.TrainState` (the step, the record
    of adjustments); ``checkpoint(reason)`` saves one; ``stopwatch`` leaves paused time out
    of the ETA; ``reporters``: integrations whose failures are reported here; ``faults``: the
    run's :class:`~engine.training.faults.Faults` (resuming after a reward fault reloads the
    reward plugins)."""

    def __init__(self, cfg, control, dist, parts, state, publisher, checkpoint: Callable[[str], Any],
                 stopwatch, reporters: list, faults=None) -> None:
        self.cfg, self.control, self.dist, self.parts, self.state = cfg, control, dist, parts, state
        self.publisher, self.checkpoint, self.stopwatch, self.reporters = publisher, checkpoint, stopwatch, reporters
        self.faults = faults
        self.requests = Requests()  # the requests taken at the last step boundary

    def between_steps(self) -> Requests:
        """Apply what the viewer asked for: adjustments, checkpoint-now, pause (waiting here
        until resumed or stopped). Returns the last requests taken."""
        for message in take_errors(self.reporters):
            self.publisher.log("warning", "report", message, step=self.state.step)
        requests = self._take()
        if requests.fail is not None:
            if self.state.step > 0:  # resumable from the last step done
                self.checkpoint("fault")
            raise RunFault(requests.fail)
        if not requests.pause:
            return requests
        self.publisher.set_state(RunState.PAUSED, self._paused_message())
        paused_at = time.perf_counter()
        while requests.pause:
            if self.dist.is_main:
                self.control.wait_for_request(timeout=1.0)  # other ranks wait in the broadcast
            requests = self._take()
            if requests.checkpointed:
                self.publisher.set_state(RunState.PAUSED, self._paused_message())
        self.stopwatch.exclude(time.perf_counter() - paused_at)  # ETA ignores paused time
        if not requests.stop and self.faults is not None and self.faults.fault_kind == REWARD:
            reload_rewards(self.parts, self.publisher, self.state.step)  # the user fixed the plugin file
        if not requests.stop:
            self.publisher.set_state(RunState.RUNNING, f"resumed at step {self.state.step}")
        return requests

    def _paused_message(self) -> str:
        """``paused at step 12``, and for a pause a fault made, the fault and what to change
        (every view's header shows it, not only the events)."""
        faults, step = self.faults, self.state.step
        if faults is None or not faults.fault:
            return f"paused at step {step}"
        return f"paused at step {step} by a fault: {faults.fault} — {faults.advice}"

    def _take(self) -> Requests:
        """Take the requests (rank 0's word decides, on every rank) and apply adjustments and checkpoint-now."""
        control = self.control
        requests = None
        if self.dist.is_main:
            requests = Requests(adjust=control.take_adjustments(), checkpoint=control.take_checkpoint_request(),
                                stop=control.stop_requested, handover=control.handover_requested,
                                reload_rewards=control.take_reload_request(), fail=control.fail_requested)
            requests.pause = control.paused_requested and not requests.stop and requests.fail is None
        self.requests = requests = self.dist.broadcast(requests)
        self.adjust(requests.adjust)
        if requests.reload_rewards:
            reload_rewards(self.parts, self.publisher, self.state.step)
        requests.checkpointed = requests.checkpoint and self.checkpoint("requested") is not None
        return requests

    def adjust(self, changes: dict[str, Any]) -> None:
        """Validate and apply hyperparameter changes from the next step on; a change that
        fails validation is rejected whole, with the reason in the events."""
        if not changes:
            return
        step, parts = self.state.step, self.parts
        try:
            changes = validate_adjustment(self.cfg, changes, model_context(parts.model))
        except ConfigError as exc:
            self.publisher.log("error", "adjust", f"adjustment rejected: {exc}", step=step)
            return
        for key, value in changes.items():
            setattr(self.cfg, key, value)
            if key == "learning_rate":
                scheduler = parts.scheduler
                scheduler.base_lrs = [value for _ in scheduler.base_lrs]
                factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
                for group in parts.optimizer.param_groups:
                    group["lr"] = value * factor
            elif key == "reward_weights":
                parts.reward_weights = torch.tensor(value, dtype=torch.float32)
            elif key == "beta" and value > 0 and parts.ref_model is None:
                parts.ref_model = parts.reference(self.cfg)
        self.state.adjustments.append({"step": step, **changes})
        text = ", ".join(f"{k}={v}" for k, v in changes.items())
        self.publisher.log("info", "adjust", f"adjusted {text} (from step {step + 1})", step=step, data=changes)
