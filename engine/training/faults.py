"""Faults a run survives: non-finite updates, reward functions that fail, running out of
accelerator memory.

One bad step costs that step, not the run: a non-finite update is skipped, a failing reward
function costs its batch. A fault that repeats means the run is going wrong, so after
:data:`PAUSE_AFTER_FAILURES` in a row the run pauses, keeps everything, and says why and
what to change; the user adjusts and resumes.
"""

from __future__ import annotations

import torch

PAUSE_AFTER_FAILURES = 3  # NaN updates, or steps where every reward function failed, in a row


class Faults:
    """Counts the streaks of failures and pauses the run when one gets too long."""

    def __init__(self, publisher) -> None:
        self.publisher = publisher
        self.nan_streak = 0  # updates in a row with a non-finite loss or gradient
        self.reward_fail_streak = 0  # steps in a row on which every reward function failed

    def pause(self, what: str, advice: str, step: int) -> None:
        """Stop spending compute on a run that is going wrong, keep everything, and say why."""
        self.publisher.log("error", "fault", f"paused: {what} — {advice}", step=step, data={"advice": advice})
        self.publisher.control.pause()

    def reward_errors(self, errors: list[tuple[str, str]], function_names: set[str], step: int) -> None:
        """Report each reward function that failed on this batch; pause once all of them have
        failed on :data:`PAUSE_AFTER_FAILURES` steps in a row."""
        for name, message in errors:
            self.publisher.log("error", "reward_error", f"reward function {name} failed: {message}", step=step,
                               data={"function": name})
        failed = {name for name, _ in errors}
        self.reward_fail_streak = self.reward_fail_streak + 1 if failed >= function_names else 0
        if self.reward_fail_streak >= PAUSE_AFTER_FAILURES:
            self.reward_fail_streak = 0
            self.pause(f"every reward function failed for {PAUSE_AFTER_FAILURES} steps in a row "
                       f"(last: {errors[-1][1]})", "fix the reward function, then resume", step)

    def update_done(self) -> None:
        self.nan_streak = 0

    def update_skipped(self, step: int, skipped_so_far: int) -> None:
        """A non-finite loss or gradient: the update was skipped on every rank."""
        self.nan_streak += 1
        self.publisher.log("warning", "nan", f"non-finite loss or gradient at step {step}: update skipped "
                           f"({skipped_so_far} so far)", step=step)
        if self.nan_streak >= PAUSE_AFTER_FAILURES:
            self.pause(f"{self.nan_streak} updates in a row had a non-finite loss or gradient",
                       "lower learning_rate or max_grad_norm, then resume", step)

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
        )
