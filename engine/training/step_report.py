"""What a step reports: its metrics (with held-out results when an evaluation is due), the
sampled groups of a new round, and the health alarms its metrics set off.

Rewards that failed are missing, not zero: a batch that no reward function scored reports
``reward`` (and its spread) as NaN, written as null, and its steps set off no health alarm
(an alarm about the task's difficulty would blame the task for a broken reward function)."""

from __future__ import annotations

import math
import time

import torch

from engine.run.events import StepMetrics, StepSamples
from engine.training.batch import Batch
from engine.training.health import HealthMonitor
from engine.training.metrics import SPREAD_STATS, length_metrics, memory_metrics, reward_metrics
from engine.training.samples import sample_groups
from engine.training.update import UpdateResult


class Stopwatch:
    """Training time since the first step of this process's part of the run, paused time
    left out (the ETA and the summary's wall time ignore pauses)."""

    def __init__(self, first_step: int = 0) -> None:
        self.restart(first_step)

    def restart(self, first_step: int = 0) -> None:
        """Start timing now, at step ``first_step`` (a resumed run's ETA is from its own pace)."""
        self.start = time.perf_counter()
        self.first_step = first_step

    def exclude(self, seconds: float) -> None:
        self.start += seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class StepReporter:
    """Publishes each step's metrics, samples and alarms (``parts``: the run's
    :class:`~engine.training.setup.RunParts`; ``evaluate``: its
    :class:`~engine.training.evaluation.Evaluator`)."""

    def __init__(self, cfg, dist, parts, state, evaluate, publisher, stopwatch: Stopwatch, faults=None,
                 log_history: list | None = None) -> None:
        self.cfg, self.dist, self.parts, self.state = cfg, dist, parts, state
        self.evaluate, self.publisher, self.stopwatch = evaluate, publisher, stopwatch
        self.health = HealthMonitor()
        self.faults = faults  # engine.training.faults.Faults: which steps' rewards failed
        self.round_rewards_failed = False  # a reward function failed on the round these steps train on
        self.log_history = log_history if log_history is not None else []  # trainer_state.log_history

    def report(self, step: int, batch: Batch, update: UpdateResult, timings: dict[str, float], step_time: float,
               new_round: bool) -> dict[str, float]:
        """Publish step ``step``'s metrics (evaluating first when due: every ``eval_steps``
        and at the last step), a new round's sampled groups, and any alarms; returns the metrics."""
        cfg = self.cfg
        if new_round:
            self.round_rewards_failed = self.faults is not None and self.faults.reward_failed_step == step
        metrics = self.dist.reduce_metrics(self.metrics(batch, update, timings, step_time))
        if step == cfg.max_steps or (cfg.eval_steps and step % cfg.eval_steps == 0):
            t_eval = time.perf_counter()
            metrics.update(self.evaluate(step, "end of training" if step == cfg.max_steps else "periodic"))
            metrics["time/eval"] = time.perf_counter() - t_eval  # kept out of step_time
        self.publisher.publish(StepMetrics(step=step, metrics=metrics))
        self.log_history.append({**metrics, "step": step})
        if new_round and cfg.log_completions_groups > 0:
            per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
            groups = sample_groups(
                batch, self.parts.tokenizer, self.parts.reward_names, cfg.num_generations,
                min(cfg.log_completions_groups, per_step // cfg.num_generations),
                batch.token_logps, batch.token_entropy,
            )
            self.publisher.publish(StepSamples(step=step, groups=groups))
        if self.round_rewards_failed:
            return metrics  # the health of a run whose rewards failed says nothing about the task
        for alarm in self.health.observe(step, metrics):
            self.publisher.log("warning", "health", alarm.message, step=step,
                               data={"alarm": alarm.name, "suggestion": alarm.suggestion})
        return metrics

    def metrics(self, batch: Batch, update: UpdateResult, timings: dict[str, float], step_time: float) -> dict[str, float]:
        """This process's metrics of a step, with TRL's names."""
        cfg, state = self.cfg, self.state
        elapsed = self.stopwatch.elapsed()
        metrics = {
            **reward_metrics(batch.rewards_total, batch.rewards_per_func, self.parts.reward_names),
            **batch.stats,
            **update.stats,
            **length_metrics(batch.rollout.model_lengths, batch.rollout.truncated),
            "loss": update.loss,
            "grad_norm": update.grad_norm,
            "learning_rate": update.learning_rate,
            "num_tokens": float(state.num_tokens),
            "step_time": step_time,
            "completions_per_s": batch.rollout.completion_ids.size(0) / step_time if step_time > 0 else 0.0,
            "skipped_updates": float(state.skipped_updates),
            "beta": cfg.beta,
            "temperature": cfg.temperature,
            **timings,
            **memory_metrics(self.parts.device),
            "elapsed_s": elapsed,
            "eta_s": elapsed / max(state.step - self.stopwatch.first_step, 1) * (cfg.max_steps - state.step),
        }
        per_func = batch.rewards_per_func
        if per_func.numel() and bool(torch.isnan(per_func).all()):
            # No function gave a value (they failed): there is no reward, and no spread of one.
            for name in ("reward", *SPREAD_STATS):
                metrics[name] = math.nan
        return metrics
