"""The GRPO loop: sample → generate → score → advantages → update → report.

``Trainer(cfg, control).start()`` runs it on a background thread; ``run()`` runs it in the
calling thread (headless). Everything a viewer needs leaves through ``control.publish`` and
the run directory; everything a viewer may change comes in through ``control`` and is
applied at a step boundary.
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from engine.training import checkpointing as ckpt
from engine.algo import grpo
from engine.config.schema import ConfigError, RunConfig, config_to_dict, dump_yaml
from engine.config.checks import validate_adjustment
from engine.config.presets import config_from_yaml
from engine.run.channel import ChannelServer
from engine.run.control import Control
from engine.run.events import EvalResult, LogEvent, RunFailed, RunFinished, RunStarted, RunState, StateChanged, StepMetrics, StepSamples
from engine.training.batch import Batch, Scored, merge_scored
from engine.data.prompts import BatchOrder, PromptData, PromptRenderer, load_prompt_data, reward_columns
from engine.parallel.distributed import Dist
from engine.training.evaluation import can_evaluate, eval_metrics, eval_tally, ranking_eval
from engine.training.health import HealthMonitor
from engine.training.logprobs import completion_logps
from engine.training.metrics import length_metrics, memory_metrics, reward_metrics
from engine.training.micro_batch import LossSetup, loss_with_signal, micro_batch_loss
from engine.training.model_loading import (
    cpu_threads_for_small_models,
    eos_token_ids,
    load_model_and_tokenizer,
    load_reference_model,
    load_tokenizer,
    make_optimizer,
    mixed_precision,
    pick_device,
    save_final,
)
from engine.algo.ranked import rank_scores, ranked_advantages
from engine.data.ranked import ranked_rollout
from engine.run.reporting import close_reporters, make_reporters, take_errors
from engine.rewards.scoring import build_reward_funcs, score
from engine.rollout.backend import Rollout, SamplingParams, TransformersRollout
from engine.run.rundir import NullWriter, RunWriter, truncate_after
from engine.training.samples import sample_groups
from engine.algo.schedules import lr_lambda
from engine.parallel.sharding import (
    full_optimizer_state,
    full_state_dict,
    full_tensor,
    full_weights,
    in_step_forwards,
    is_sharded,
)


def default_run_dir(cfg: RunConfig) -> Path:
    """``runs/<preset>-<YYYYmmdd-HHMMSS>``, with a suffix if two runs start in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{cfg.run_name or 'run'}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


PAUSE_AFTER_FAILURES = 3  # NaN updates, or steps where every reward function failed, in a row


class NoCheckpoint(ValueError):
    """Resume was asked for a run directory without a complete checkpoint."""


class RunDirInUse(ValueError):
    """The chosen run directory already holds a run: training into it would mix two runs."""


def check_run_dir_free(path: str | Path) -> None:
    path = Path(path)
    if (path / "metrics.jsonl").exists() or (path / "config.yaml").exists():
        raise RunDirInUse(f"output directory {path} already holds a run; choose another --output")


class Trainer:
    def __init__(self, cfg: RunConfig, control: Control | None = None, run_dir: str | Path | None = None,
                 evaluate: bool = True, *, model=None, tokenizer=None, reward_funcs: list | None = None,
                 data: PromptData | None = None, ref_model=None, rollout_backend=None) -> None:
        """``model``, ``tokenizer``, ``reward_funcs`` (callables or specs) and ``data`` replace
        what the config would load — the Python API passes objects a notebook already holds.
        ``rollout_backend(model, pad_id, eos_ids)`` makes the generation backend (default: the
        transformers one; see engine.rollout.backend for the interface)."""
        self.cfg = cfg
        self.evaluate = evaluate
        self._given = {"model": model, "tokenizer": tokenizer, "reward_funcs": reward_funcs, "data": data,
                       "ref_model": ref_model, "rollout_backend": rollout_backend}
        self.control = control or Control()
        self.run_dir = Path(run_dir or cfg.output_dir or default_run_dir(cfg))
        self.step = 0
        self.summary: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self.resume_from: Path | None = None
        self.dist: Dist | None = None
        self.requests: dict[str, Any] = {}  # the viewer's requests taken at the last step boundary

    @classmethod
    def resume(cls, run_dir: str | Path, control: Control | None = None, **kwargs) -> "Trainer":
        """A trainer that continues ``run_dir`` from its newest complete checkpoint, with the
        config (live adjustments included) that checkpoint saved."""
        run_dir = Path(run_dir)
        path = ckpt.latest_checkpoint(run_dir)
        if path is None:
            raise NoCheckpoint(f"{run_dir} has no complete checkpoint to resume from")
        cfg = config_from_yaml((path / "config.yaml").read_text(encoding="utf-8"), source=str(path / "config.yaml"))
        trainer = cls(cfg, control=control, run_dir=run_dir, **kwargs)
        trainer.resume_from = path
        return trainer

    # ------------------------------------------------------------------ entry points
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="grpo-engine", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> dict[str, Any]:
        """Train to the end (or a stop request). Never raises: a failure becomes RunFailed."""
        # Several processes (accelerate launch): rank 0 names the run directory and alone
        # writes it and talks to viewers; the others train their share of each batch.
        self.dist = dist = Dist()
        self.run_dir = Path(dist.broadcast(str(self.run_dir)))
        problem = None
        if self.resume_from is None and dist.is_main:
            try:
                check_run_dir_free(self.run_dir)
            except RunDirInUse as exc:  # nothing written: the other run's files stay as they were
                problem = str(exc)
        problem = dist.broadcast(problem)
        if problem is not None:
            self.summary = {"error": problem, "steps": 0, "run_dir": str(self.run_dir)}
            self._publish(RunFailed(error=problem))
            return self.summary
        if self.resume_from is not None:
            self.step = ckpt.checkpoint_step(self.resume_from)
            if dist.is_main:
                truncate_after(self.run_dir, self.step)  # each step exactly once in the logs
            dist.barrier()
        self.writer = RunWriter(self.run_dir) if dist.is_main else NullWriter(self.run_dir)
        self.channel = channel = ChannelServer(self.run_dir, self.control, lambda: {
            "state": self.control.state.value, "step": self.step, "max_steps": self.cfg.max_steps}) \
            if dist.is_main else None
        if channel is not None:
            channel.start()
        try:
            self._setup()
            self._train()
            if self.requests.get("handover"):
                self._hand_over()
            else:
                self._finish()
        except Exception as exc:  # noqa: BLE001 - reported, written, and the viewer stays alive
            self._fail(exc)
        finally:
            gc.unfreeze()  # the next run in this process (notebooks, tests) starts from a clean slate
            close_reporters(getattr(self, "reporters", []))
            if channel is not None:
                channel.stop()
            self.writer.close()
        return self.summary

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg = self.cfg
        self.writer.write_config(dump_yaml(cfg))  # first, so even a run that fails to load is listed
        self._set_state(RunState.STARTING, "loading model")
        hf_logging.disable_progress_bar()
        torch.manual_seed(cfg.seed)
        self.device = pick_device()
        cpu_threads_for_small_models(self.device)
        given = self._given
        if given["model"] is not None:
            self.model = given["model"].to(self.device)
            self.tokenizer = given["tokenizer"] or load_tokenizer(self.model.name_or_path)
        else:
            self.model, self.tokenizer = load_model_and_tokenizer(cfg, self.device, path=self.resume_from)
        self.ref_model = self._load_reference() if cfg.beta > 0 else None
        self.use_bf16 = mixed_precision(cfg.bf16, self.device, self.model)
        self.data = given["data"] or load_prompt_data(cfg.dataset, seed=cfg.seed)
        self.renderer = PromptRenderer(
            self.tokenizer,
            system_prompt=cfg.dataset.system_prompt,
            chat_template=cfg.dataset.chat_template,
            max_prompt_length=cfg.max_prompt_length,
        )
        self.order = BatchOrder(len(self.data.train), cfg.seed, cfg.dataset.shuffle)
        # ranked groups bring their rewards (the ranks) with them: no reward functions run
        self.reward_funcs = [] if cfg.dataset.format == "ranked" else build_reward_funcs(
            given["reward_funcs"] or cfg.reward_funcs, task=self.data.task, reward_kwargs=cfg.reward_kwargs,
            max_completion_length=cfg.max_completion_length, device=self.device,
        )
        self.reward_names = ["rank_score"] if cfg.dataset.format == "ranked" else [f.name for f in self.reward_funcs]
        self.reporters = make_reporters(cfg, self.run_dir) if self.dist.is_main else []
        for reporter in self.reporters:
            self.control.subscribe(reporter)
        self.reward_weights = torch.tensor(cfg.reward_weights or [1.0] * len(self.reward_names))
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)
        # DDP across processes, or FSDP2 sharding the model in place (see engine.parallel.sharding); alone, the model itself
        self.train_model, self.optimizer = self.dist.prepare(self.model, make_optimizer(self.model, cfg, self.device))
        self.sharded = is_sharded(self.model)
        if cfg.use_vllm and given["rollout_backend"] is None:
            from engine.rollout.vllm_colocated import make_vllm_backend

            self.backend = make_vllm_backend(cfg, self.model, self.tokenizer.pad_token_id, self.eos_ids, self.dist)
        else:
            self.backend = (given["rollout_backend"] or TransformersRollout)(
                self.model, self.tokenizer.pad_token_id, self.eos_ids)
        self.separate_engine = getattr(self.backend, "separate_engine", False)  # samples with its own weights
        self.loss_setup = LossSetup(cfg, self._training_logps, self.separate_engine, self.dist.world)
        self.sampling_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + self.dist.rank)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg))
        self.health = HealthMonitor()
        self.batch: Batch | None = None
        self.ranked = cfg.dataset.format == "ranked"
        # rows of a group share their prompt (computed once) — not so for ranked groups of mixed sizes
        self.share_group = 1 if self.ranked else cfg.num_generations
        per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
        if self.ranked:
            self.round_size = per_step
        elif cfg.generation_batch_size:  # counts every process's completions, as in TRL
            self.round_size = cfg.generation_batch_size // self.dist.world
        else:
            self.round_size = cfg.per_device_train_batch_size * (cfg.steps_per_generation or cfg.gradient_accumulation_steps)
        if self.round_size % per_step or self.round_size % cfg.num_generations:
            raise ConfigError(f"generation_batch_size: {self.round_size} completions per round on each of "
                              f"{self.dist.world} processes is not a multiple of {per_step} per step")
        # the sampling policy differs from the one being updated once a round feeds several steps
        self.reuses_batch = cfg.num_iterations > 1 or self.round_size > per_step
        self.num_tokens = 0
        self.skipped_updates = 0
        self.nan_streak = 0
        self.reward_fail_streak = 0
        self.adjustments: list[dict] = []
        if self.resume_from is not None:
            state = ckpt.load_training_state(self, self.resume_from)
            self.num_tokens = state["num_tokens"]
            self.skipped_updates = state["skipped_updates"]
            self.adjustments = state["adjustments"]

        n_params = sum(p.numel() for p in self.model.parameters())
        devices = self._devices()
        self._publish(RunStarted(
            run_dir=str(self.run_dir), config=config_to_dict(cfg), total_steps=cfg.max_steps,
            model=cfg.model_name_or_path, device=devices, start_step=self.step,
        ))
        # in events.jsonl too: a dashboard attached from another process reads model and devices there
        self._log("info", "run_started", f"model {cfg.model_name_or_path} ({n_params / 1e6:.2f}M params) on {devices}",
                  data={"model": cfg.model_name_or_path, "device": devices, "total_steps": cfg.max_steps,
                        "processes": self.dist.world, "sharded": self.sharded})
        if self.resume_from is not None:
            self._log("info", "resume", f"resumed from {self.resume_from} at step {self.step}", step=self.step,
                      data={"checkpoint": str(self.resume_from)})
        self.last_eval: dict[str, float] = {}
        if self.step == 0:
            before = self._evaluate(0, "before training")
            self.eval_before = before
            if before:
                self.writer.metrics(0, before)
        # Everything alive now (modules, model, data) lives as long as the run: out of the
        # collector's sight, a full collection scans only what the loop makes. With ~0.5M
        # objects after setup, each full collection otherwise stalled every thread 150-300 ms.
        gc.collect()
        gc.freeze()
        self.t_start = time.perf_counter()
        self._first_step = self.step
        self._set_state(RunState.RUNNING)

    # ------------------------------------------------------------------ the loop
    def _train(self) -> None:
        cfg = self.cfg
        while self.step < cfg.max_steps:
            self._between_steps()
            if self.requests["stop"]:
                self._log("info", "status", f"stop requested at step {self.step}")
                if self.step > 0:  # resumable from where it stopped
                    self._checkpoint("stop")
                break
            self.step += 1
            try:
                self._train_step(self.step)
            except torch.OutOfMemoryError:
                self._recover_from_oom()
                continue
            if cfg.save_steps and self.step % cfg.save_steps == 0:
                self._checkpoint("save_steps")

    def _train_step(self, step: int) -> None:
        cfg = self.cfg
        t0 = time.perf_counter()
        timings: dict[str, float] = {"time/generate": 0.0, "time/reward": 0.0}
        # One generation round feeds `steps_per_round` optimizer steps, each reused μ times.
        per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
        steps_per_round = self.round_size // per_step
        i = (step - 1) % (steps_per_round * cfg.num_iterations)
        new_round = i == 0 or self.batch is None
        if new_round:
            with self._weights_for_sampling():
                self.batch = self._make_batch(step, timings)  # Generate, Score, Advantages
        batch = self.batch
        part = slice((i % steps_per_round) * per_step, (i % steps_per_round + 1) * per_step)
        if self.ranked:  # the groups' own sizes decide how many rows a step has
            part = slice(0, batch.rollout.completion_ids.size(0))

        # ---- Update -------------------------------------------------------------
        t_update = time.perf_counter()
        update = self._update(batch, part)
        timings["time/update"] = time.perf_counter() - t_update

        # ---- Report -------------------------------------------------------------
        step_time = time.perf_counter() - t0
        metrics = self.dist.reduce_metrics(self._step_metrics(batch, update, timings, step_time))
        if step == cfg.max_steps or (cfg.eval_steps and step % cfg.eval_steps == 0):
            t_eval = time.perf_counter()
            metrics.update(self._evaluate(step, "end of training" if step == cfg.max_steps else "periodic"))
            metrics["time/eval"] = time.perf_counter() - t_eval  # kept out of step_time
        self.writer.metrics(step, metrics)
        self._publish(StepMetrics(step=step, metrics=metrics))
        if new_round and cfg.log_completions_groups > 0:
            groups = sample_groups(
                batch, self.tokenizer, self.reward_names, cfg.num_generations,
                min(cfg.log_completions_groups, per_step // cfg.num_generations),
                batch.token_logps, batch.token_entropy,
            )
            self.writer.samples(step, groups)
            self._publish(StepSamples(step=step, groups=groups))
        for alarm in self.health.observe(step, metrics):
            self._log("warning", "health", alarm.message, step=step, data={"alarm": alarm.name, "suggestion": alarm.suggestion})

    def _make_batch(self, step: int, timings: dict[str, float]) -> Batch:
        """A generation round: prompts → G completions each → rewards → advantages.

        With dynamic sampling (DAPO), groups whose rewards all agree are dropped and more
        prompts are drawn until the round is full or the tries run out."""
        cfg, g = self.cfg, self.cfg.num_generations
        n_prompts = self.round_size // g
        if self.ranked:
            return self._ranked_batch(self._next_prompts(n_prompts))
        parts = [self._generate_and_score(self._next_prompts(n_prompts), step, timings)]
        stats: dict[str, float] = {}
        if cfg.dynamic_sampling:
            # Every process refills by the most any of them lacks, so the data order and a
            # generation engine shared across processes stay in step.
            for _ in range(cfg.dynamic_sampling_max_tries):
                deficit = self.dist.max_int(n_prompts - sum(int(p.keep.sum()) for p in parts))
                if deficit <= 0:
                    break
                parts.append(self._generate_and_score(self._next_prompts(deficit), step, timings))
            generated = sum(p.keep.numel() for p in parts)
            stats["dynamic_sampling/frac_dropped"] = 1.0 - sum(int(p.keep.sum()) for p in parts) / generated
            stats["dynamic_sampling/rounds"] = float(len(parts))
        scored = merge_scored(parts, n_prompts, g, self.tokenizer.pad_token_id, prefer_signal=cfg.dynamic_sampling)

        # ---- Advantages (over every rank's groups: batch-level scaling sees the whole batch)
        local = self.dist.local_slice(scored.rewards_total.numel())
        if cfg.multi_objective_aggregation == "normalize_then_sum":
            advantages, adv_stats = grpo.normalize_then_sum_advantages(
                self.dist.gather(scored.rewards_per_func), self.reward_weights, g)
        else:
            advantages, adv_stats = grpo.group_advantages(self.dist.gather(scored.rewards_total), g, cfg.scale_rewards)
        adv_std = float(advantages.std()) if advantages.numel() > 1 else 0.0
        advantages = advantages[local]
        rollout = scored.rollout
        mask = rollout.completion_mask.float()
        if cfg.mask_truncated_completions:
            mask = grpo.truncation_mask(mask, rollout.truncated.to(mask.device))
        with torch.no_grad():
            old_logps = self._logps_chunked(self.model, rollout) if self.reuses_batch else None
            ref_logps = self._ref_logps(rollout) if cfg.beta > 0 else None
        stats.update({
            "reward_std": float(adv_stats["reward_std"]),
            "frac_reward_zero_std": float(adv_stats["frac_reward_zero_std"]),
            "advantage/std": adv_std,
        })
        return Batch(rollout, scored.rows, advantages.to(self.device), mask.to(self.device), old_logps, ref_logps,
                     stats, scored.rewards_total, scored.rewards_per_func, scored.completions,
                     torch.zeros_like(mask), torch.zeros_like(mask))

    def _ranked_batch(self, rows: list[dict]) -> Batch:
        """Ranked groups: the given responses stand in for sampled ones and their ranks for
        rewards (score (G − rank)/(G − 1)); advantages as usual, no generation, no scoring."""
        cfg = self.cfg
        rollout, sizes = self._ranked_rollout(rows)
        ranks = [list(r["ranks"]) for r in rows]
        advantages = ranked_advantages(ranks, cfg.scale_rewards).to(self.device)
        scores = torch.cat([rank_scores(torch.tensor(r, dtype=torch.float32)) for r in ranks])
        mask = rollout.completion_mask.float()
        with torch.no_grad():
            ref_logps = self._ref_logps(rollout) if cfg.beta > 0 else None
        group_rows = [r for r, n in zip(rows, sizes) for _ in range(n)]
        completions = [resp for r in rows for resp in r["responses"]]
        stats = {"reward_std": float(scores.std()) if scores.numel() > 1 else 0.0, "frac_reward_zero_std": 0.0,
                 "advantage/std": float(advantages.std()) if advantages.numel() > 1 else 0.0}
        return Batch(rollout, group_rows, advantages, mask.to(self.device), None, ref_logps, stats, scores,
                     scores[:, None], completions, torch.zeros_like(mask), torch.zeros_like(mask))

    def _next_prompts(self, count: int) -> list[dict]:
        """``count`` prompts for this rank: every rank draws the same global list, keeps its slice."""
        return self.dist.shard([self.data.train[i] for i in self.order.next(count * self.dist.world)])

    def _generate_and_score(self, rows: list[dict], step: int, timings: dict[str, float]) -> Scored:
        cfg = self.cfg
        # ---- Generate -----------------------------------------------------------
        t = time.perf_counter()
        prompt_ids = [self.renderer.ids(r["prompt"]) for r in rows]
        rollout = self.backend.generate(prompt_ids, cfg.num_generations, self.sampling_params(), self.sampling_gen)
        timings["time/generate"] += time.perf_counter() - t

        # ---- Score --------------------------------------------------------------
        t = time.perf_counter()
        completions = self._decode(rollout)
        group_rows = [r for r in rows for _ in range(cfg.num_generations)]
        prompts = [r["prompt"] for r in group_rows]
        conversational = isinstance(rows[0]["prompt"], list)
        completions_arg = [[{"role": "assistant", "content": c}] for c in completions] if conversational else completions
        ids_list = [ids[: int(n)] for ids, n in zip(rollout.completion_ids.tolist(), rollout.lengths.tolist())]
        rewards = score(
            self.reward_funcs, self.reward_weights, prompts, completions_arg,
            reward_columns(group_rows), ids_list, step,
        )
        self._report_reward_errors(rewards, step)
        timings["time/reward"] += time.perf_counter() - t
        keep = grpo.groups_with_signal(rewards.total, cfg.num_generations)
        return Scored(rollout, group_rows, completions, rewards.total, rewards.per_func, keep)

    def _report_reward_errors(self, rewards, step: int) -> None:
        for name, message in rewards.errors:
            self._log("error", "reward_error", f"reward function {name} failed: {message}", step=step,
                      data={"function": name})
        failed = {name for name, _ in rewards.errors}
        self.reward_fail_streak = self.reward_fail_streak + 1 if failed >= {f.name for f in self.reward_funcs} else 0
        if self.reward_fail_streak >= PAUSE_AFTER_FAILURES:
            self.reward_fail_streak = 0
            self._pause_for_fault(f"every reward function failed for {PAUSE_AFTER_FAILURES} steps in a row "
                                  f"(last: {rewards.errors[-1][1]})", "fix the reward function, then resume")

    def _update(self, batch: Batch, part: slice) -> dict[str, Any]:
        """One optimizer step on rows ``part`` of the round: gradient accumulation over micro-batches."""
        cfg = self.cfg
        self.model.train()
        micro = cfg.per_device_train_batch_size
        starts = range(part.start, part.stop, micro)
        # FSDP gathers layer by layer, so every rank makes as many passes: a rank with fewer
        # micro-batches (ranked groups of mixed sizes) adds passes that change nothing
        idle = self.dist.max_int(len(starts)) - len(starts) if self.sharded else 0
        # DAPO's token mean is over the whole batch, every rank's tokens included; gradients are
        # averaged over ranks, so each rank divides by its share of that count.
        local_items = batch.mask[part].sum()
        num_items = (self.dist.sum(local_items) / self.dist.world).clamp(min=1.0)
        sums: dict[str, float] = {}
        total_loss, backward_ran = 0.0, False
        for n, start in enumerate(starts):
            sl = slice(start, min(start + micro, part.stop))
            with self.dist.no_sync(self.train_model, last_micro_batch=n == len(starts) - 1):
                loss, stats, logps, entropy = loss_with_signal(self.loss_setup, batch, sl, num_items)
                if loss is not None:
                    if cfg.loss_type != "dapo":
                        loss = loss / len(starts)
                    loss.backward()
                    total_loss += float(loss.detach())
                    backward_ran = True
            share = float(batch.mask[sl].sum()) / float(local_items.clamp(min=1.0))
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v) * share
            batch.token_logps[sl] = logps.detach()
            batch.token_entropy[sl] = entropy.detach()
        for _ in range(idle):
            self._idle_pass(batch, slice(part.start, min(part.start + micro, part.stop)), num_items)
        if not backward_ran:  # every group was left out: the zero gradients computing them would have
            for p in self.model.parameters():  # given (so Adam's moments and weight decay move on as usual)
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)

        grad_norm = full_tensor(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm))

        lr = self.optimizer.param_groups[0]["lr"]
        finite = math.isfinite(total_loss) and bool(torch.isfinite(grad_norm))
        if self.dist.max_int(int(not finite)) == 0:  # every rank steps, or none does
            self.optimizer.step()
            self.nan_streak = 0
        else:
            self.skipped_updates += 1
            self.nan_streak += 1
            self._log("warning", "nan", f"non-finite loss or gradient at step {self.step}: update skipped "
                      f"({self.skipped_updates} so far)", step=self.step)
            if self.nan_streak >= PAUSE_AFTER_FAILURES:
                self._pause_for_fault(f"{self.nan_streak} updates in a row had a non-finite loss or gradient",
                                      "lower learning_rate or max_grad_norm, then resume")
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if cfg.sync_ref_model and isinstance(self.ref_model, torch.nn.Module) and self.step % cfg.ref_model_sync_steps == 0:
            with full_weights(self.model):
                grpo.mix_into_reference(self.ref_model, self.model, cfg.ref_model_mixup_alpha)
            self._log("info", "ref_sync", f"reference model moved towards the policy (alpha {cfg.ref_model_mixup_alpha})",
                      step=self.step)
        self.backend.sync_weights(self.model)  # a separate engine gathers sharded weights to receive them
        rollout = batch.rollout
        self.num_tokens += int(rollout.prompt_mask[part].sum() + rollout.completion_mask[part].sum())
        return {"loss": total_loss, "grad_norm": float(grad_norm), "learning_rate": lr, "stats": sums}

    def _idle_pass(self, batch: Batch, sl: slice, num_items: torch.Tensor) -> None:
        """A forward and backward of rows ``sl`` that adds nothing to the gradients: it keeps
        this rank's FSDP collectives in step with a rank that has more micro-batches."""
        loss, *_ = micro_batch_loss(self.loss_setup, batch, sl, num_items)
        (loss * 0.0).backward()

    def _training_logps(self, rollout: Rollout, sl: slice):
        """Log-probs and entropies of rows ``sl`` through the (possibly distributed) training model."""
        return self._logps(self.train_model, rollout, sl, with_entropy=True)

    def _logps_chunked(self, model, rollout: Rollout) -> torch.Tensor:
        """Log-probs of a whole round without gradients, one micro-batch at a time (bounded memory)."""
        n, micro = rollout.completion_ids.size(0), self.cfg.per_device_train_batch_size
        chunks = range(0, n, micro)
        idle = self.dist.max_int(len(chunks)) - len(chunks) if in_step_forwards(model) else 0  # see _update
        logps = torch.cat([self._logps(model, rollout, slice(s, min(s + micro, n)))[0] for s in chunks])
        for _ in range(idle):
            self._logps(model, rollout, slice(0, min(micro, n)))
        return logps

    def _ref_logps(self, rollout: Rollout) -> torch.Tensor | None:
        """Reference log-probs: a frozen copy, or — with LoRA — the policy with its adapter switched off."""
        if isinstance(self.ref_model, torch.nn.Module):
            return self._logps_chunked(self.ref_model, rollout)
        if self.cfg.peft is not None:
            with self.model.disable_adapter():
                return self._logps_chunked(self.model, rollout)
        return None

    def _logps(self, model, rollout: Rollout, sl: slice = slice(None), with_entropy: bool = False):
        """Per-token log-probs (and entropies) of the completion tokens under ``model``, at T.

        Sharded (outside gathered weights), one forward per micro-batch and no shared prompt,
        whose length buckets differ between ranks: FSDP's per-layer gathers need the same calls
        on every rank."""
        group = 1 if in_step_forwards(model) else self.share_group
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            return completion_logps(model, rollout, sl, group, self.cfg.temperature, with_entropy)

    # ------------------------------------------------------------------ between steps
    def _between_steps(self) -> None:
        """Apply what the viewer asked for: adjustments, checkpoint-now, pause."""
        control = self.control
        for message in take_errors(getattr(self, "reporters", [])):
            self._log("warning", "report", message, step=self.step)
        requests = self._take_requests()
        if not requests["pause"]:
            return
        self._set_state(RunState.PAUSED, f"paused at step {self.step}")
        paused_at = time.perf_counter()
        while requests["pause"]:
            if self.dist.is_main:
                control.wait_for_request(timeout=1.0)  # other ranks wait in the broadcast
            requests = self._take_requests()
            if requests["checkpointed"]:
                self._set_state(RunState.PAUSED, f"paused at step {self.step}")
        self.t_start += time.perf_counter() - paused_at  # ETA ignores paused time
        if not requests["stop"]:
            self._set_state(RunState.RUNNING, f"resumed at step {self.step}")

    def _take_requests(self) -> dict[str, Any]:
        """Take the viewer's requests and apply adjustments and checkpoint-now. With several
        processes rank 0 takes them and every rank gets the same, so all act at the same step."""
        control = self.control
        requests = None
        if self.dist.is_main:
            requests = {"adjust": control.take_adjustments(), "checkpoint": control.take_checkpoint_request(),
                        "stop": control.stop_requested, "handover": control.handover_requested}
            requests["pause"] = control.paused_requested and not requests["stop"]
        self.requests = requests = self.dist.broadcast(requests)  # rank 0's word decides, on every rank
        self._apply_adjustments(requests["adjust"])
        requests["checkpointed"] = requests["checkpoint"] and self._checkpoint("requested") is not None
        return requests

    def _pause_for_fault(self, what: str, advice: str) -> None:
        """Stop spending compute on a run that is going wrong, keep everything, and say why."""
        self._log("error", "fault", f"paused: {what} — {advice}", step=self.step, data={"advice": advice})
        self.control.pause()

    def _recover_from_oom(self) -> None:
        """Out of accelerator memory: undo the step, free what we can, pause with advice."""
        self.step -= 1
        self.batch = None
        self.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self._pause_for_fault(
            f"out of GPU memory at step {self.step + 1}",
            "lower per_device_train_batch_size (more gradient_accumulation_steps), num_generations or "
            "max_completion_length, or turn on gradient_checkpointing; adjust, then resume",
        )

    def _apply_adjustments(self, changes: dict[str, Any]) -> None:
        if not changes:
            return
        try:
            changes = validate_adjustment(self.cfg, changes)
        except ConfigError as exc:
            self._log("error", "adjust", f"adjustment rejected: {exc}", step=self.step)
            return
        for key, value in changes.items():
            setattr(self.cfg, key, value)
            if key == "learning_rate":
                self.scheduler.base_lrs = [value for _ in self.scheduler.base_lrs]
                factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
                for group in self.optimizer.param_groups:
                    group["lr"] = value * factor
            elif key == "reward_weights":
                self.reward_weights = torch.tensor(value, dtype=torch.float32)
            elif key == "beta" and value > 0 and self.ref_model is None:
                self.ref_model = self._load_reference()
        self.adjustments.append({"step": self.step, **changes})
        text = ", ".join(f"{k}={v}" for k, v in changes.items())
        self._log("info", "adjust", f"adjusted {text} (from step {self.step + 1})", step=self.step, data=changes)

    def _load_reference(self):
        """The frozen reference for the KL term: the one handed in (Python API), none with LoRA
        (the policy with its adapter off is the reference), a copy of a model object handed in,
        or the starting weights loaded from ``model_name_or_path``."""
        given = self._given
        if given["ref_model"] is not None:
            ref = given["ref_model"].to(self.device).eval()
            ref.requires_grad_(False)
            return ref
        if self.cfg.peft is not None:
            return None
        return load_reference_model(self.cfg, self.device, self.model if given["model"] is not None else None)

    def _devices(self) -> str:
        """Where the run trains, as the dashboard's status line shows it: ``cuda:0``, or
        ``cuda:0 ×8 FSDP2`` (rank 0's device, the process count, how they share the model)."""
        if not self.dist.enabled:
            return str(self.device)
        return f"{self.device} ×{self.dist.world} {'FSDP2' if self.sharded else 'DDP'}"

    def _weights_for_sampling(self, alone: bool = False):
        """Sharded: the whole weights gathered on every rank while the model itself samples (or
        runs on one rank ``alone``); not when another engine samples. A no-op unsharded."""
        if self.sharded and (alone or not self.separate_engine):
            return full_weights(self.model)
        return contextlib.nullcontext()

    def sampling_params(self, greedy: bool = False) -> SamplingParams:
        cfg = self.cfg
        return SamplingParams(
            max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
            top_k=cfg.top_k or 0, min_p=cfg.min_p, repetition_penalty=cfg.repetition_penalty, greedy=greedy,
        )

    # ------------------------------------------------------------------ checkpoints, eval, end
    def _checkpoint(self, reason: str) -> Path | None:
        previous = self.control.state
        self._set_state(RunState.CHECKPOINTING, f"saving checkpoint at step {self.step}")
        # every rank's sampling stream, so a resumed multi-process run samples as it would have
        sampling_states = self.dist.gather_object(self.sampling_gen.get_state())
        weights = full_state_dict(self.model)  # sharded: gathered on rank 0 (every rank takes part)
        optimizer_state = full_optimizer_state(self.model, self.optimizer)
        error = None
        if self.dist.is_main:
            try:
                path = ckpt.save_checkpoint(self, self.writer.checkpoint_dir(self.step), sampling_states,
                                            weights, optimizer_state)
                ckpt.prune(self.run_dir, self.cfg.save_total_limit)
            except OSError as exc:
                error = str(exc)
        error = self.dist.broadcast(error)  # every rank knows whether the run is resumable here
        path = None if error else self.writer.checkpoint_dir(self.step)
        if error:
            self._log("error", "checkpoint", f"checkpoint at step {self.step} could not be written: {error}",
                      step=self.step)
        else:
            self._log("info", "checkpoint", f"checkpoint saved: {path} ({reason})", step=self.step, data={"path": str(path)})
        if previous != RunState.CHECKPOINTING:
            self._set_state(previous if previous != RunState.STARTING else RunState.RUNNING)
        return path

    def _evaluate(self, step: int, why: str) -> dict[str, float]:
        """Greedy accuracy on the held-out rows (``eval/accuracy``); empty when there are none."""
        cfg = self.cfg
        rows = self.data.eval[: cfg.eval_max_samples] if cfg.eval_max_samples else self.data.eval
        if not rows or not self.evaluate:
            return {}
        with self._weights_for_sampling(alone=self.ranked):  # ranked evaluation: forwards on rank 0 alone
            metrics = self._eval_metrics(rows)
        if not metrics:
            return {}
        self.last_eval = metrics
        self._publish(EvalResult(step=step, metrics=metrics))
        text = ", ".join(f"{k.removeprefix('eval/')} {v:.3f}" for k, v in metrics.items()
                         if not k.endswith(("length", "clipped_ratio")))
        self._log("info", "eval", f"held-out {text} on {len(rows)} prompts ({why})", step=step, data=metrics)
        return metrics

    def _eval_metrics(self, rows: list[dict]) -> dict[str, float]:
        cfg = self.cfg
        if self.ranked:
            if not self.dist.is_main:  # forward passes only: rank 0 alone, the others wait
                return {}
            return ranking_eval(rows, self._ranked_rollout, self._logps_chunked_current)
        if not can_evaluate(self.reward_funcs, self.data.task):
            return {}
        # Every process judges its share; all generate as many prompts (the last share is
        # padded and the padding dropped), so tensor-parallel engines stay in step.
        world, rank = self.dist.world, self.dist.rank
        mine = rows[rank::world]
        real = len(mine)
        mine = mine + rows[:1] * (-(-len(rows) // world) - real)
        tally = eval_tally(self.renderer, self.backend, self.tokenizer, self.reward_funcs, self.data.task, mine,
                           self.sampling_params(greedy=True), cfg.num_generations_eval, self.sampling_params())
        return eval_metrics(self.dist.gather_object(tally[:real]), cfg.num_generations_eval)

    def _ranked_rollout(self, rows: list[dict]):
        return ranked_rollout(rows, [self.renderer.ids(r["prompt"]) for r in rows], self.tokenizer, self.eos_ids[0],
                              self.tokenizer.pad_token_id, self.cfg.max_completion_length, self.device)

    def _logps_chunked_current(self, rollout: Rollout) -> torch.Tensor:
        return self._logps_chunked(self.model, rollout)

    def _finish(self) -> None:
        if self.step < self.cfg.max_steps and self.step > 0:  # stopped early: the last step had no eval
            self._evaluate(self.step, "at stop")  # before saving: merging a LoRA adapter changes the model
        self._set_state(RunState.STOPPING, "saving final model")
        final = self.writer.final_dir
        weights = full_state_dict(self.model)  # sharded: gathered on rank 0 (every rank takes part)
        if self.dist.is_main:
            save_final(self.model, self.tokenizer, final, self.cfg.peft, weights)
        self.dist.barrier()
        wall = time.perf_counter() - self.t_start
        self.summary = {
            "steps": self.step,
            "max_steps": self.cfg.max_steps,
            "wall_time_s": round(wall, 2),
            "eval_accuracy_before": getattr(self, "eval_before", {}).get("eval/accuracy"),
            "eval_accuracy_after": self.last_eval.get("eval/accuracy"),
            "skipped_updates": self.skipped_updates,
            "final_model": str(final),
            "run_dir": str(self.run_dir),
        }
        self._log("info", "summary", "run finished", step=self.step, data=self.summary)
        self._set_state(RunState.FINISHED, f"finished at step {self.step}")
        self._publish(RunFinished(summary=self.summary))

    def _hand_over(self) -> None:
        """End this process's part of the run at a checkpoint; another process resumes it."""
        self.summary = {"handed_over": True, "steps": self.step, "run_dir": str(self.run_dir)}
        self._log("info", "detach", f"handed over at step {self.step}: continuing in a background process",
                  step=self.step)
        self._set_state(RunState.STOPPING, "handed over to a background process")

    def _fail(self, exc: Exception) -> None:
        tb_path = self.run_dir / ("error.log" if self.dist is None or self.dist.is_main else f"error-rank{self.dist.rank}.log")
        try:
            tb_path.write_text(traceback.format_exc(), encoding="utf-8")
        except OSError:
            tb_path = None
        message = f"{type(exc).__name__}: {exc}"
        self.summary = {"error": message, "steps": self.step, "run_dir": str(self.run_dir)}
        try:
            self._log("error", "error", message, step=self.step, data={"traceback": str(tb_path) if tb_path else None})
            self._set_state(RunState.FAILED, message)
        finally:
            self._publish(RunFailed(error=message, traceback_path=str(tb_path) if tb_path else None))

    # ------------------------------------------------------------------ reporting helpers
    def _decode(self, rollout: Rollout) -> list[str]:
        ids = rollout.completion_ids.tolist()
        lengths = rollout.lengths.tolist()
        return self.tokenizer.batch_decode([row[: int(n)] for row, n in zip(ids, lengths)], skip_special_tokens=True)

    def _step_metrics(self, batch: Batch, update: dict, timings: dict, step_time: float) -> dict[str, float]:
        cfg = self.cfg
        elapsed = time.perf_counter() - self.t_start
        return {
            **reward_metrics(batch.rewards_total, batch.rewards_per_func, self.reward_names),
            **batch.stats,
            **update["stats"],
            **length_metrics(batch.rollout.lengths, batch.rollout.truncated),
            "loss": update["loss"],
            "grad_norm": update["grad_norm"],
            "learning_rate": update["learning_rate"],
            "num_tokens": float(self.num_tokens),
            "step_time": step_time,
            "completions_per_s": batch.rollout.completion_ids.size(0) / step_time if step_time > 0 else 0.0,
            "skipped_updates": float(self.skipped_updates),
            "beta": cfg.beta,
            "temperature": cfg.temperature,
            **timings,
            **memory_metrics(self.device),
            "elapsed_s": elapsed,
            "eta_s": elapsed / max(self.step - self._first_step, 1) * (cfg.max_steps - self.step),
        }

    def _set_state(self, state: RunState, message: str = "") -> None:
        self.writer.event("info", "status", message or state.value, step=self.step, data={"state": state.value})
        self._publish(StateChanged(state=state, message=message))
        if getattr(self, "channel", None) is not None:
            self.channel.beat()  # other processes see the change at once

    def _log(self, level: str, category: str, message: str, step: int | None = None, data: dict | None = None) -> None:
        self.writer.event(level, category, message, step=step, data=data)
        self._publish(LogEvent(level=level, category=category, message=message, step=step, data=data or {}))

    def _publish(self, event) -> None:
        self.control.publish(event)

