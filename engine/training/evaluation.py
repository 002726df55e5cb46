"""Held-out evaluation: greedy accuracy, and pass@k from k samples per prompt; during a run,
:class:`Evaluator`.

The judge is the task's verifier for built-in tasks, otherwise the run's ``accuracy``
reward (rows it cannot judge — None — are left out of the means).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from engine.algo.grpo import pass_at_k
from engine.rewards.scoring import score
from engine.run.events import EvalResult
from engine.training.progress import NoProgress
from engine.training.round import sampling_params

EVAL_BATCH = 256


def _judge(texts: list[str], rows: list[dict], ids: list[list[int]], task, accuracy_fn) -> list[float | None]:
    if task is not None:
        return [task.verify(text, row) for text, row in zip(texts, rows)]
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
    batch = score(accuracy_fn, torch.ones(1), [r["prompt"] for r in rows], texts, columns, ids, 0)
    return [None if v != v else float(v) for v in batch.per_func[:, 0].tolist()]


@dataclass
class EvalTally:
    """One process's results on its share of the held-out prompts, per prompt, so shares
    from several processes combine exactly (:func:`eval_metrics`)."""

    greedy: list[float | None] = field(default_factory=list)  # 1/0 correct, None: unjudgeable
    sampled: list[float | None] = field(default_factory=list)  # correct out of k (k > 0 only)
    lengths: list[float] = field(default_factory=list)  # greedy completion length
    truncated: list[bool] = field(default_factory=list)  # greedy completion hit the length limit

    def __getitem__(self, keep: slice) -> "EvalTally":
        return EvalTally(self.greedy[keep], self.sampled[keep], self.lengths[keep], self.truncated[keep])


def single_turn(renderer, backend, tokenizer):
    """``sample(rows, n, params) -> (rollout, completions)``: n completions of each row, one turn each."""
    def sample(rows: list[dict], n: int, params):
        rollout = backend.generate([renderer.ids(r["prompt"]) for r in rows], n, params)
        ids = [row[: int(k)] for row, k in zip(rollout.completion_ids.tolist(), rollout.lengths.tolist())]
        return rollout, tokenizer.batch_decode(ids, skip_special_tokens=True)
    return sample


@torch.no_grad()
def _correct_counts(sample, task, accuracy_fn, rows, params, n: int, judged=None):
    """Per prompt: correct completions out of n (None when unjudgeable), the first completion's
    length, and whether it was truncated. ``sample`` makes the completions (see
    :func:`single_turn`; a tool run's episodes judge their final answer). ``judged(k)`` hears
    after each batch that k more prompts are done."""
    counts: list[float | None] = []
    lengths: list[float] = []
    truncated: list[bool] = []
    per_batch = max(1, EVAL_BATCH // n)
    for start in range(0, len(rows), per_batch):
        chunk = rows[start : start + per_batch]
        rollout, texts = sample(chunk, n, params)
        ids = [row[: int(k)] for row, k in zip(rollout.completion_ids.tolist(), rollout.lengths.tolist())]
        lengths += rollout.model_lengths[::n].float().tolist()
        truncated += rollout.truncated[::n].tolist()
        verdicts = _judge(texts, [r for r in chunk for _ in range(n)], ids, task, accuracy_fn)
        for i in range(len(chunk)):
            group = verdicts[i * n : (i + 1) * n]
            counts.append(None if any(v is None for v in group) else sum(group))
        if judged is not None:
            judged(len(chunk))
    return counts, lengths, truncated


def can_evaluate(reward_funcs, task) -> bool:
    """Held-out accuracy needs a judge: the task's verifier or an ``accuracy`` reward."""
    return task is not None or any(f.name == "accuracy" for f in reward_funcs)


def eval_tally(renderer, backend, tokenizer, reward_funcs, task, rows, params,
               num_samples: int = 0, sample_params=None, judged=None, sample=None) -> EvalTally:
    """Greedy (and, with ``num_samples`` k > 0, k sampled) completions of ``rows``, judged;
    ``judged(k)``: k more prompts done (each prompt counts once per pass); ``sample``: how
    completions are made (default: one turn from ``backend``)."""
    accuracy_fn = [f for f in reward_funcs if f.name == "accuracy"]
    sample = sample or single_turn(renderer, backend, tokenizer)
    greedy, lengths, truncated = _correct_counts(sample, task, accuracy_fn, rows, params, 1, judged)
    sampled: list[float | None] = []
    if num_samples > 0 and sample_params is not None:
        sampled, _, _ = _correct_counts(sample, task, accuracy_fn, rows, sample_params, num_samples, judged)
    return EvalTally(greedy, sampled, lengths, truncated)


def eval_metrics(tallies: list[EvalTally], num_samples: int = 0) -> dict[str, float]:
    """``eval/accuracy`` (share of judged prompts whose greedy completion is correct),
    ``eval/mean_length``, ``eval/clipped_ratio``; with k = ``num_samples`` > 0 also
    ``eval/pass@k`` (some of k samples correct; unbiased estimator) and ``eval/mean@k``."""
    greedy = [c for t in tallies for c in t.greedy if c is not None]
    lengths = [v for t in tallies for v in t.lengths]
    truncated = [v for t in tallies for v in t.truncated]
    metrics = {
        "eval/accuracy": sum(greedy) / len(greedy) if greedy else float("nan"),
        "eval/mean_length": sum(lengths) / max(len(lengths), 1),
        "eval/clipped_ratio": sum(truncated) / max(len(truncated), 1),
    }
    k = num_samples
    judged = [c for t in tallies for c in t.sampled if c is not None]
    if k > 0 and judged:
        metrics[f"eval/pass@{k}"] = sum(pass_at_k(k, int(c), k) for c in judged) / len(judged)
        metrics[f"eval/mean@{k}"] = sum(c / k for c in judged) / len(judged)
    return metrics


@torch.no_grad()
def ranking_eval(rows: list[dict], rollout_of, logps_of) -> dict[str, float]:
    """``eval/ranking_accuracy`` for ranked groups: how often the policy's sequence log-prob
    order agrees with the given ranks, over every pair of differently ranked responses.

    ``rollout_of(rows) -> (rollout, group_sizes)`` and ``logps_of(rollout) -> [N, T]`` come from
    the trainer, so the same rendering and forward pass are measured as are trained."""
    from engine.algo.ranked import ranking_accuracy, sequence_logps

    if not rows:
        return {}
    rollout, sizes = rollout_of(rows)
    seq = sequence_logps(logps_of(rollout), rollout.completion_mask.float())
    scores, start = [], 0
    for row, n in zip(rows, sizes):
        acc = ranking_accuracy(seq[start : start + n], torch.tensor(row["ranks"]))
        start += n
        if acc == acc:  # NaN when every rank in the group ties
            scores.append(acc)
    return {"eval/ranking_accuracy": sum(scores) / len(scores)} if scores else {}


class Evaluator:
    """Held-out evaluation during a run: which rows, which process judges which, and what is
    published. ``before`` and ``last`` keep the results before training and the newest ones
    (the run's summary compares them)."""

    def __init__(self, cfg, dist, parts, rounds, forwards, publisher, enabled: bool = True, progress=None) -> None:
        """``parts``: the run's :class:`~engine.training.setup.RunParts`; ``rounds`` renders
        ranked rows and ``forwards`` scores them; ``enabled``: False skips every evaluation;
        ``progress`` (:class:`~engine.training.progress.StepProgress`) hears how far it got."""
        self.cfg, self.dist, self.parts, self.rounds, self.forwards = cfg, dist, parts, rounds, forwards
        self.publisher, self.enabled = publisher, enabled
        self.progress = progress or NoProgress()
        self.before: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, step: int, why: str) -> dict[str, float]:
        """Greedy accuracy on the held-out rows (``eval/accuracy``); empty when there are none."""
        cfg = self.cfg
        rows = self.parts.data.eval[: cfg.eval_max_samples] if cfg.eval_max_samples else self.parts.data.eval
        if not rows or not self.enabled:
            return {}
        with self.parts.weights_for_sampling(alone=self.parts.ranked):  # ranked evaluation: forwards on rank 0 alone
            metrics = self._metrics(rows)
        if not metrics:
            return {}
        self.last = metrics
        self.publisher.publish(EvalResult(step=step, metrics=metrics))
        text = ", ".join(f"{k.removeprefix('eval/')} {v:.3f}" for k, v in metrics.items()
                         if not k.endswith(("length", "clipped_ratio")))
        self.publisher.log("info", "eval", f"held-out {text} on {len(rows)} prompts ({why})", step=step, data=metrics)
        return metrics

    def _metrics(self, rows: list[dict]) -> dict[str, float]:
        cfg, parts = self.cfg, self.parts
        if parts.ranked:
            if not self.dist.is_main:  # forward passes only: rank 0 alone, the others wait
                return {}
            return ranking_eval(rows, self.rounds.ranked_rollout, self.forwards.policy)
        if not can_evaluate(parts.reward_funcs, parts.data.task):
            return {}
        # Every process judges its share; all generate as many prompts (the last share is
        # padded and the padding dropped), so tensor-parallel engines stay in step.
        world, rank = self.dist.world, self.dist.rank
        mine = rows[rank::world]
        real = len(mine)
        mine = mine + rows[:1] * (-(-len(rows) // world) - real)
        passes = 2 if cfg.num_generations_eval > 0 else 1
        progress, done = self.progress, [0]
        progress.start("eval", total=len(mine) * passes, unit="prompts", detail=f"{len(rows)} held-out prompts")

        def judged(k: int) -> None:
            done[0] += k
            progress.advance(done[0])

        tally = eval_tally(parts.renderer, parts.backend, parts.tokenizer, parts.reward_funcs, parts.data.task, mine,
                           sampling_params(cfg, greedy=True), cfg.num_generations_eval, sampling_params(cfg), judged,
                           sample=self._episodes if parts.agent is not None else None)
        return eval_metrics(self.dist.gather_object(tally[:real]), cfg.num_generations_eval)

    def _episodes(self, rows: list[dict], n: int, params):
        """Held-out episodes of a tool run: judged on their final answer, as training rewards them."""
        parts, cfg = self.parts, self.cfg

        def generate(prompt_ids, k, max_new_tokens):
            return parts.backend.generate(prompt_ids, k, dataclasses.replace(params, max_new_tokens=max(1, max_new_tokens)))

        made = parts.agent.rollout(rows, n, parts.renderer, parts.tokenizer, generate,
                                   max_completion_length=cfg.max_completion_length, max_model_len=parts.max_model_len,
                                   pad_id=parts.tokenizer.pad_token_id, eos_ids=parts.eos_ids, device=parts.device,
                                   most_of=self.dist.max_int if getattr(parts.backend, "collective", False) else None)
        finals = [next((m.get("content") or "" for m in reversed(msgs) if m.get("role") == "assistant"), "")
                  for msgs in made.episodes.messages]
        return made.episodes.rollout, finals
