"""Faults a run survives: non-finite updates, reward functions that fail, running out of
accelerator memory.

One bad step costs that step, not the run: a non-finite update is skipped, a failing reward
function costs its batch. A fault that repeats means the run is going wrong, so after
:data:`PAUSE_AFTER_FAILURES` in a row the run ends the way its context needs
(``on_fault``):

- ``"pause"`` (someone is watching: the dashboard, an attached or detached run): the run
  pauses, keeps everything, and says why and what to change; the user fixes it and
  resumes. Resuming after a reward fault re-imports the reward plugins from their files,
  so the fixed code is what runs (:func:`reload_rewards`).
- ``"fail"`` (nobody is: headless in the foreground, the Python API): the run checkpoints
  at the step boundary and ends as failed with one line that names the cause
  (:class:`RunFault`), so a CI job fails instead of waiting for ever.

A run stopped while a fault stands (paused for it, nothing fixed yet) ends "stopped after a
fault", not as a run that finished.
"""

from __future__ import annotations

import torch

from engine.rewards.scoring import RewardSpecError, reload_reward_funcs

PAUSE_AFTER_FAILURES = 3  # NaN updates, or steps where every reward function failed, in a row
FAULT_POLICIES = ("pause", "fail")
REWARD, NAN, OOM = "reward", "nan", "oom"  # the kinds of fault


class RunFault(Exception):
    """A fault ended the run (``on_fault="fail"``); the message is the one line a user reads,
    e.g. "reward function accuracy failed on 3 steps in a row: ZeroDivisionError: division by zero"."""


def check_fault_policy(on_fault: str) -> str:
    if on_fault not in FAULT_POLICIES:
        raise ValueError(f"on_fault must be one of {', '.join(FAULT_POLICIES)}, not {on_fault!r}")
    return on_fault


def reward_fault_message(errors: list[tuple[str, str]], steps: int) -> str:
    """One line naming the reward functions that failed and their last errors."""
    last: dict[str, str] = {}
    for name, message in errors:
        last[name] = message
    if len(last) == 1:
        ((name, message),) = last.items()
        return f"reward function {name} failed on {steps} steps in a row: {message}"
    return f"every reward function failed on {steps} steps in a row: " + "; ".join(f"{n}: {m}" for n, m in last.items())


class Faults:
    """Counts the streaks of failures and ends the streak the way ``on_fault`` says.

    ``fault``: the fault that paused or is ending the run, until a step goes well again (what
    a stop in between reports); ``reward_failed_step``: the last step whose rewards failed
    (health alarms leave that round's steps out)."""

    def __init__(self, publisher, on_fault: str = "pause") -> None:
        self.publisher = publisher
        self.on_fault = check_fault_policy(on_fault)
        self.nan_streak = 0  # updates in a row with a non-finite loss or gradient
        self.reward_fail_streak = 0  # steps in a row on which every reward function failed
        self._streak_step: int | None = None  # the step last counted in reward_fail_streak
        self.reward_failed_step: int | None = None
        self.fault: str | None = None
        self.fault_kind: str | None = None
        self.advice = ""  # what to change before resuming

    def pause(self, what: str, advice: str, step: int, kind: str) -> None:
        """Stop spending compute on a run that is going wrong, keep everything, and say why:
        paused until resumed, or (``on_fault="fail"``) ended at the step boundary."""
        self.fault, self.fault_kind, self.advice = what, kind, advice
        data = {"advice": advice, "fault": kind, "on_fault": self.on_fault}
        if self.on_fault == "fail":
            self.publisher.log("error", "fault", f"{what} — ending the run with a checkpoint (on_fault: fail; "
                               f"on_fault: pause waits for a fix)", step=step, data=data)
            self.publisher.control.fail(what)
            return
        self.publisher.log("error", "fault", f"paused: {what} — {advice}", step=step, data=data)
        self.publisher.control.pause()

    def reward_errors(self, errors: list[tuple[str, str]], function_names: set[str], step: int) -> None:
        """Report each reward function that failed on this batch; end the streak once all of
        them have failed on :data:`PAUSE_AFTER_FAILURES` steps in a row."""
        for name, message in errors:
            self.publisher.log("error", "reward_error", f"reward function {name} failed: {message}", step=step,
                               data={"function": name})
        if errors:
            self.reward_failed_step = step
        failed = {name for name, _ in errors}
        if not (function_names and failed >= function_names):
            self.reward_fail_streak = 0
            self._streak_step = None
            if self.fault_kind == REWARD:
                self.fault = self.fault_kind = None  # rewards come back: the fault is over
            return
        if step != self._streak_step:  # several batches of one step (dynamic sampling) count once
            self._streak_step = step
            self.reward_fail_streak += 1
        if self.reward_fail_streak >= PAUSE_AFTER_FAILURES:
            self.reward_fail_streak = 0
            self._streak_step = None
            self.pause(reward_fault_message(errors, PAUSE_AFTER_FAILURES),
                       "fix the reward function and resume: its file is loaded again", step, REWARD)

    def reward_output(self, output: list[tuple[str, str]], notes: list[tuple[str, str]], step: int) -> None:
        """What reward functions printed (kept off the terminal) and changes to where they run."""
        for name, text in output:
            self.publisher.log("info", "reward_output", f"reward function {name} printed: {text}", step=step,
                               data={"function": name})
        for name, message in notes:
            self.publisher.log("warning", "reward_mode", f"reward function {name} {message}", step=step,
                               data={"function": name})

    def update_done(self) -> None:
        self.nan_streak = 0
        if self.fault_kind in (NAN, OOM):
            self.fault = self.fault_kind = None

    def update_skipped(self, step: int, skipped_so_far: int) -> None:
        """A non-finite loss or gradient: the update was skipped on every rank."""
        self.nan_streak += 1
        self.publisher.log("warning", "nan", f"non-finite loss or gradient at step {step}: update skipped "
                           f"({skipped_so_far} so far)", step=step)
        if self.nan_streak >= PAUSE_AFTER_FAILURES:
            self.pause(f"{self.nan_streak} updates in a row had a non-finite loss or gradient",
                       "lower learning_rate or max_grad_norm, then resume", step, NAN)

    def out_of_memory(self, state, optimizer) -> None:
        """Out of accelerator memory: undo the step (it runs again, with a fresh round), free
        what we can, pause with advice."""
        state.step -= 1
        state.round = None
        optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.pause(
            f"out of GPU memory at step {state.step + 1}",
            "lower per_device_train_batch_size (more gradient_accumulation_steps), num_generations or "
            "max_completion_length, or turn on gradient_checkpointing; adjust, then resume",
            state.step,
            OOM,
        )


def reload_rewards(parts, publisher, step: int) -> bool:
    """Re-import the run's reward plugins from their files (between two steps); say what was
    reloaded, or why nothing was (the functions in use stay). True when they were replaced."""
    try:
        funcs, sources = reload_reward_funcs(parts.reward_funcs)
    except RewardSpecError as exc:
        publisher.log("error", "reward_reload", f"reward functions not reloaded, the previous ones stay: {exc}",
                      step=step)
        return False
    if not sources:
        publisher.log("info", "reward_reload", "no reward plugin to reload: the reward functions are built in "
                      "or handed in as objects", step=step)
        return False
    parts.reward_funcs = funcs
    publisher.log("info", "reward_reload", f"reward functions reloaded from {', '.join(sources)}", step=step,
                  data={"sources": sources})
    return True
