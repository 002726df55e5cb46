"""A generation round: prompts → G completions each → rewards (:meth:`Rounds.generate_and_score`)
→ group advantages (:meth:`Rounds.advantages`), kept as the :class:`Batch` the round's
optimizer steps train on.

Ranked groups take the same two steps without a model in them: the given responses stand in
for sampled ones and their ranks for rewards.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from engine.algo import grpo
from engine.algo.ranked import rank_scores, ranked_advantages
from engine.data.prompts import reward_columns
from engine.data.ranked import ranked_rollout
from engine.rewards.contract import RewardLog, RewardTrainerState
from engine.rewards.scoring import score
from engine.rollout.backend import Rollout, SamplingParams
from engine.training.batch import Batch, Scored, merge_scored
from engine.training.metrics import SPREAD_STATS
from engine.training.progress import NoProgress


def sampling_params(cfg, greedy: bool = False) -> SamplingParams:
    """How completions are sampled, from the run's (adjustable) settings."""
    return SamplingParams(
        max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
        top_k=cfg.top_k or 0, min_p=cfg.min_p, repetition_penalty=cfg.repetition_penalty, greedy=greedy,
        extra=dict(cfg.generation_kwargs or {}),
    )


def _row_weighted(parts: list[Scored]) -> dict[str, float]:
    """The parts' own statistics (an episode round's tools/* metrics), weighted by their rows."""
    names = dict.fromkeys(name for p in parts for name in p.stats)
    rows = [p.keep.numel() for p in parts]
    return {name: sum(p.stats.get(name, 0.0) * n for p, n in zip(parts, rows)) / max(sum(rows), 1) for name in names}


class Rounds:
    """Makes a run's generation rounds.

    ``parts``: the run's :class:`~engine.training.setup.RunParts`; ``forwards``: its
    :class:`~engine.training.forwards.Forwards`; ``geometry``: its round sizes; ``faults``
    hears of failing reward functions; ``state.order`` says which prompts come next;
    ``progress`` (:class:`~engine.training.progress.StepProgress`) hears how far each phase got."""

    def __init__(self, cfg, dist, parts, forwards, geometry, faults, state, progress=None) -> None:
        self.cfg, self.dist, self.parts, self.forwards = cfg, dist, parts, forwards
        self.geometry, self.faults, self.state = geometry, faults, state
        self.progress = progress or NoProgress()
        self._told_cut = False  # whether the run was told that max_prompt_length cuts prompts
        self._told_tools = False  # whether the run was warned that tool calls fail
        self.log_history: list[dict] = []  # one dict per reported step: trainer_state.log_history
        self._logged_metrics = RewardLog()  # what reward functions sent with log_metric this round

    def trainer_state(self, step: int) -> RewardTrainerState:
        """What reward functions get as ``trainer_state`` while step ``step`` is generated (TRL
        passes ``TrainerState``: ``global_step`` counts the optimizer steps already done)."""
        cfg, order = self.cfg, self.state.order
        prompts_per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * self.dist.world \
            / cfg.num_generations
        return RewardTrainerState(
            epoch=order.epoch + order.index / order.size, global_step=step - 1, max_steps=cfg.max_steps,
            eval_steps=cfg.eval_steps or None, save_steps=cfg.save_steps,
            train_batch_size=cfg.per_device_train_batch_size,
            num_train_epochs=math.ceil(cfg.max_steps * prompts_per_step / order.size),
            num_input_tokens_seen=int(self.state.num_tokens), log_history=self.log_history,
            is_local_process_zero=self.dist.is_main, is_world_process_zero=self.dist.is_main,
        )

    # ---- Generate, Score ---------------------------------------------------------
    def generate_and_score(self, step: int, timings: dict[str, float]) -> Scored:
        """The round's completions with their rewards; ``timings`` gains the time each took.

        With dynamic sampling (DAPO), groups whose rewards all agree are dropped and more
        prompts are drawn until the round is full or the tries run out."""
        cfg, g = self.cfg, self.cfg.num_generations
        n_prompts = self.geometry.prompts_per_round
        if self.parts.ranked:
            return self._ranked(self._next_prompts(n_prompts))
        self._logged_metrics = RewardLog()
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
        scored = merge_scored(parts, n_prompts, g, self.parts.tokenizer.pad_token_id, prefer_signal=cfg.dynamic_sampling)
        scored.stats = {**self._logged_metrics.metric_means(), **_row_weighted(parts), **stats}
        return scored

    def _next_prompts(self, count: int) -> list[dict]:
        """``count`` prompts for this rank: every rank draws the same global list, keeps its slice."""
        train = self.parts.data.train
        return self.dist.shard([train[i] for i in self.state.order.next(count * self.dist.world)])

    def _tell_cut(self, count: int, step: int) -> None:
        """Say once per run that max_prompt_length cuts prompts (from the left, as TRL does):
        a value set too low silently trains on the prompts' last few tokens."""
        cut = self.parts.renderer.take_cut()
        if cut and not self._told_cut:
            self._told_cut = True
            self.faults.publisher.log(
                "warning", "data", f"max_prompt_length {self.cfg.max_prompt_length} cut {len(cut)} of {count} prompts "
                f"of step {step} from the left (the longest had {max(cut)} tokens); raise max_prompt_length "
                "to train on whole prompts", step=step, data={"cut": len(cut), "longest": max(cut)})

    def _generate_and_score(self, rows: list[dict], step: int, timings: dict[str, float]) -> Scored:
        cfg, parts, progress = self.cfg, self.parts, self.progress
        t = time.perf_counter()
        parts.renderer.take_cut()  # (those of an evaluation in between are not this batch's)
        n = len(rows) * cfg.num_generations
        progress.start("generate", total=cfg.max_completion_length, unit="tokens",
                       detail=f"{n} completions of up to {cfg.max_completion_length} tokens")
        options = {}
        if getattr(parts.backend, "reports_progress", False) and progress.generation is not None:
            options["progress"] = progress.generation
        group_rows = [r for r in rows for _ in range(cfg.num_generations)]
        columns = reward_columns(group_rows)
        agentic = None
        if parts.agent is not None:  # episodes: turns, tool calls, tool results
            agentic = self._episodes(rows, options)  # each episode's prompt rendered with its tools
            self._tell_cut(n if parts.agent.environments is not None else len(rows), step)  # per episode / prompt
            rollout, completions = agentic.episodes.rollout, agentic.episodes.texts
            completions_arg = agentic.episodes.messages
            if agentic.environments is not None:
                columns["environments"] = agentic.environments  # as TRL passes them to reward functions
        elif parts.rollout_func is not None:  # the user's function makes the round
            made = parts.rollout_func(rows)
            rollout, completions, completions_arg = made.rollout, made.texts, made.completions
            columns.update(made.columns)
        else:
            prompt_ids = [parts.renderer.ids(r["prompt"]) for r in rows]
            self._tell_cut(len(rows), step)
            rollout = parts.backend.generate(prompt_ids, cfg.num_generations, sampling_params(cfg),
                                             parts.sampling_gen, **options)
            completions = self.decode(rollout)
            conversational = isinstance(rows[0]["prompt"], list)
            completions_arg = [[{"role": "assistant", "content": c}] for c in completions] if conversational \
                else completions
        timings["time/generate"] += time.perf_counter() - t

        t = time.perf_counter()
        prompts = [r["prompt"] for r in group_rows]
        ids_list = [ids[: int(k)] for ids, k in zip(rollout.completion_ids.tolist(), rollout.lengths.tolist())]
        funcs = parts.reward_funcs
        progress.start("score", total=len(funcs), unit="reward functions", detail=f"{n} completions")

        def scoring(i: int, name: str) -> None:
            progress.advance(i, f"{name} ({i + 1} of {len(funcs)}) on {n} completions")

        rewards = score(
            funcs, parts.reward_weights, prompts, completions_arg,
            columns, ids_list, step, before_each=scoring, trainer_state=self.trainer_state(step),
            cancelled=lambda: self.faults.publisher.control.stop_requested,
        )
        for name, values in rewards.metrics.items():
            self._logged_metrics.metrics.setdefault(name, []).extend(values)
        self.faults.reward_output(rewards.output, rewards.notes, step)
        self.faults.reward_errors(rewards.errors, {f.name for f in parts.reward_funcs}, step)
        timings["time/reward"] += time.perf_counter() - t
        per_func = rewards.per_func
        stats: dict[str, float] = {}
        episodes = None
        if agentic is not None:
            per_func = self._episode_faults(agentic, per_func, step)
            stats = dict(agentic.episodes.stats)
            episodes = [{"turns": turns, "episode": summary}
                        for turns, summary in zip(agentic.episodes.turns, agentic.episodes.summaries)]
        # a completion no function scored is NaN, not nansum's 0: left out of its group's statistics
        total = grpo.mark_unscorable(rewards.total, per_func)
        keep = grpo.groups_with_signal(total, cfg.num_generations)
        extra = {column: (list(values) + [None] * n)[:n] for column, values in rewards.extra.items()}
        return Scored(rollout=rollout, rows=group_rows, completions=completions, rewards_total=total,
                      rewards_per_func=per_func, keep=keep, extra=extra, stats=stats, episodes=episodes)

    def _episodes(self, rows: list[dict], options: dict):
        """A round of episodes: every round of generation within it goes through the run's backend."""
        cfg, parts, progress = self.cfg, self.parts, self.progress
        base = sampling_params(cfg)

        def generate(prompt_ids: list[list[int]], n: int, max_new_tokens: int):
            params = dataclasses.replace(base, max_new_tokens=max(1, max_new_tokens))
            return parts.backend.generate(prompt_ids, n, params, parts.sampling_gen, **options)

        def on_round(round_: int, going: int) -> None:
            progress.start("generate", total=cfg.max_completion_length, unit="tokens",
                           detail=f"tool round {round_}: {going} episodes go on after their tool results")

        return parts.agent.rollout(
            rows, cfg.num_generations, parts.renderer, parts.tokenizer, generate,
            max_completion_length=cfg.max_completion_length, max_model_len=parts.max_model_len,
            pad_id=parts.tokenizer.pad_token_id, eos_ids=parts.eos_ids, on_round=on_round, device=parts.device,
            most_of=self.dist.max_int if getattr(parts.backend, "collective", False) else None)

    def _episode_faults(self, agentic, per_func: torch.Tensor, step: int) -> torch.Tensor:
        """Rollouts whose environment could not start score nothing (advantage 0); failed and
        timed-out tool calls and malformed calls are told once a step as a warning."""
        failed = [i for i, why in enumerate(agentic.failed) if why]
        if failed:
            per_func = per_func.clone()
            per_func[failed] = float("nan")
        summaries = agentic.episodes.summaries
        calls = sum(s["calls"] for s in summaries)
        tool_failures = sum(s["failures"] for s in summaries)
        malformed = sum(s["stop"] == "parse_error" for s in summaries)
        if failed or tool_failures:
            parts = []
            if tool_failures:
                parts.append(f"{tool_failures} of {calls} tool calls failed (their error went back to the model)")
            if failed:
                parts.append(f"{len(failed)} environments could not start their episode ({agentic.failed[failed[0]]})")
            # a warning the first time (headless prints it), then info: the charts show the rates
            level = "info" if self._told_tools else "warning"
            self._told_tools = True
            self.faults.publisher.log(level, "tools", f"step {step}: " + "; ".join(parts), step=step,
                                      data={"tool_failures": tool_failures, "calls": calls,
                                            "env_errors": len(failed), "malformed": malformed})
        return per_func

    def _ranked(self, rows: list[dict]) -> Scored:
        """Ranked groups: the given responses, rewarded by rank (score (G − rank)/(G − 1))."""
        rollout, sizes = self.ranked_rollout(rows)
        ranks = [list(r["ranks"]) for r in rows]
        scores = torch.cat([rank_scores(torch.tensor(r, dtype=torch.float32)) for r in ranks])
        return Scored(
            rollout=rollout, rows=[r for r, n in zip(rows, sizes) for _ in range(n)],
            completions=[resp for r in rows for resp in r["responses"]], rewards_total=scores,
            rewards_per_func=scores[:, None], keep=torch.ones(len(rows), dtype=torch.bool), ranks=ranks,
        )

    def ranked_rollout(self, rows: list[dict]):
        """``(rollout, group sizes)`` of ranked rows' given responses, rendered as prompts are."""
        parts = self.parts
        return ranked_rollout(rows, [parts.renderer.ids(r["prompt"]) for r in rows], parts.tokenizer,
                              parts.eos_ids[0], parts.tokenizer.pad_token_id, self.cfg.max_completion_length,
                              parts.device)

    def decode(self, rollout: Rollout) -> list[str]:
        ids = rollout.completion_ids.tolist()
        lengths = rollout.lengths.tolist()
        return self.parts.tokenizer.batch_decode([row[: int(n)] for row, n in zip(ids, lengths)],
                                                 skip_special_tokens=True)

    # ---- Advantages ----------------------------------------------------------------
    def advantages(self, scored: Scored) -> Batch:
        """The round as its steps train on it: group advantages over every rank's groups
        (batch-level scaling sees the whole batch), the loss mask, and the log-probs the loss
        compares against (the sampling policy's when the round is reused, the reference's when β > 0)."""
        if scored.ranks is not None:
            return self._ranked_advantages(scored)
        cfg, g, device = self.cfg, self.cfg.num_generations, self.parts.device
        local = self.dist.local_slice(scored.rewards_total.numel())
        if cfg.multi_objective_aggregation == "normalize_then_sum":
            advantages, adv_stats = grpo.normalize_then_sum_advantages(
                self.dist.gather(scored.rewards_per_func), self.parts.reward_weights, g)
        else:
            advantages, adv_stats = grpo.group_advantages(self.dist.gather(scored.rewards_total), g, cfg.scale_rewards)
        adv_std = float(advantages.std()) if advantages.numel() > 1 else 0.0
        advantages = advantages[local]
        rollout = scored.rollout
        mask = rollout.completion_mask.float()
        if rollout.env_mask is not None:  # tool results and environment text: context, never trained on
            mask = mask * rollout.env_mask.to(mask.device).float()
        if cfg.mask_truncated_completions:
            mask = grpo.truncation_mask(mask, rollout.truncated.to(mask.device))
        with torch.no_grad():
            if self.geometry.reuses_rounds or cfg.beta > 0:
                self.progress.start("reference", detail=" and ".join(
                    what for what, on in (("sampling policy", self.geometry.reuses_rounds), ("reference", cfg.beta > 0))
                    if on) + f" log-probs of {rollout.completion_ids.size(0)} completions")
            old_logps = self.forwards.policy(rollout) if self.geometry.reuses_rounds else None
            ref_logps = self.forwards.reference(rollout) if cfg.beta > 0 else None
        stats = {
            **scored.stats,
            **{name: float(adv_stats[name]) for name in SPREAD_STATS},
            "advantage/std": adv_std,
        }
        return Batch(rollout=rollout, rows=scored.rows, advantages=advantages.to(device), mask=mask.to(device),
                     old_logps=old_logps, ref_logps=ref_logps, stats=stats, rewards_total=scored.rewards_total,
                     rewards_per_func=scored.rewards_per_func, completions=scored.completions,
                     token_logps=torch.zeros_like(mask), token_entropy=torch.zeros_like(mask), extra=scored.extra,
                     episodes=scored.episodes)

    def _ranked_advantages(self, scored: Scored) -> Batch:
        """Ranked groups: advantages from the ranks, no sampling policy to compare against."""
        cfg, device = self.cfg, self.parts.device
        advantages = ranked_advantages(scored.ranks, cfg.scale_rewards).to(device)
        rollout, scores = scored.rollout, scored.rewards_total
        mask = rollout.completion_mask.float()
        with torch.no_grad():
            ref_logps = self.forwards.reference(rollout) if cfg.beta > 0 else None
        group_std = torch.stack([grpo.nanstd(rank_scores(torch.tensor(r, dtype=torch.float32))) for r in scored.ranks])
        stats = {"reward_std": float(grpo.nanstd(scores)), "reward_std_within_group": float(torch.nanmean(group_std)),
                 "frac_reward_zero_std": 0.0,
                 "frac_group_reward_zero_std": float((~(group_std > 0)).float().mean()),
                 "advantage/std": float(advantages.std()) if advantages.numel() > 1 else 0.0}
        return Batch(rollout=rollout, rows=scored.rows, advantages=advantages, mask=mask.to(device), old_logps=None,
                     ref_logps=ref_logps, stats=stats, rewards_total=scores, rewards_per_func=scored.rewards_per_func,
                     completions=scored.completions, token_logps=torch.zeros_like(mask),
                     token_entropy=torch.zeros_like(mask))
