"""Multi-turn rollouts: the model writes a turn, its tool calls run, their results are
appended, and it goes on — until a turn calls no tool, the tool rounds run out
(``max_tool_calling_iterations``) or the episode reaches ``max_completion_length`` tokens.

An episode is one completion to the trainer: the token ids of every turn and every tool
result, in order, with ``env_mask`` 1 on the tokens the model wrote (trained on) and 0 on
the tool results' tokens (context only: they get no log-prob, no loss, no gradient). As in
TRL, tool results that would push the episode past the budget are not appended: the episode
ends with the turn that called them.

Every round of generation is one call to the run's backend (the transformers sampler or
vLLM), so episodes batch as single turns do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine.agents.parsing import ParsedTurn, parse_turn
from engine.agents.templates import tool_suffix_ids
from engine.agents.tools import Tool, ToolRunner
from engine.rollout.backend import Rollout, rollout_from_lists

Generate = Callable[[list[list[int]], int, int], Rollout]
"""``generate(prompt_ids, num_generations, max_new_tokens) -> Rollout``: one round of sampling."""

TOOL_METRICS = ("tools/call_frequency", "tools/failure_frequency", "tools/timeout_frequency",
                "tools/parse_error_frequency", "tools/turns_mean", "tools/masked_tokens_mean", "tools/limit_ratio")


@dataclass
class Episodes:
    """A round of episodes, rows in the order asked (``num_generations`` rows per prompt)."""

    rollout: Rollout  # completion_ids: every token; env_mask: 1 on the model's
    messages: list[list[dict]]  # per row: the assistant and tool messages (what reward functions get)
    texts: list[str]  # per row: the whole episode as text
    turns: list[list[dict]]  # per row: token ranges of each turn (samples.jsonl's "turns")
    summaries: list[dict]  # per row: samples.jsonl's "episode"
    stats: dict[str, float] = field(default_factory=dict)  # the round's tools/* metrics


@dataclass
class _Row:
    prompt: list[int]
    tools: dict[str, Tool]
    schemas: list[dict] | None
    ids: list[int] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)
    calls: int = 0
    failures: int = 0
    timeouts: int = 0
    stop: str = "answer"
    pending: list = field(default_factory=list)  # the last turn's tool calls, not yet run


def run_episodes(generate: Generate, tokenizer, prompts: list[list[int]], num_generations: int,
                 tools: list[dict[str, Tool]], runner: ToolRunner, *, max_completion_length: int,
                 max_iterations: int | None, max_model_len: int | None, pad_id: int, eos_ids: list[int],
                 schemas: list[list[dict]] | None = None, chat_template_kwargs: dict | None = None,
                 on_round: Callable[[int, int], None] | None = None, device: torch.device | str = "cpu",
                 most_of: Callable[[int], int] | None = None) -> Episodes:
    """Run one episode per row: ``prompts`` and ``tools`` hold one entry per row (B·G rows,
    ``num_generations`` consecutive rows per prompt). ``on_round(round, rows)`` hears before each
    round of generation after the first how many episodes go on. ``most_of(n)``: the largest
    ``n`` over the processes, for a backend whose ``generate`` every process must call together
    (tensor-parallel vLLM): they then take the same rounds, a process with no episode left
    calling it with none."""
    rows = [_Row(prompt=p, tools=t, schemas=(schemas[i] if schemas else None))
            for i, (p, t) in enumerate(zip(prompts, tools))]
    eos = set(eos_ids)
    g = num_generations
    same = all(prompts[i] == prompts[i - i % g] for i in range(len(prompts)))
    first = generate(prompts[::g], g, max_completion_length) if same else generate(prompts, 1, max_completion_length)
    _take(rows, range(len(rows)), first, eos, tokenizer, max_completion_length)

    rounds = 0
    limit = float("inf") if max_iterations is None else max_iterations
    going = [i for i, r in enumerate(rows) if r.pending]
    together = most_of or (lambda n: n)
    while together(len(going)) and rounds < limit:
        results = runner.run([(rows[i].pending, rows[i].tools) for i in going])
        next_rows = []
        for i, row_results in zip(going, results):
            row = rows[i]
            row.calls += len(row_results)
            row.failures += sum(r.error is not None for r in row_results)
            row.timeouts += sum(r.timed_out for r in row_results)
            tool_messages = [{"role": "tool", "name": r.name, "content": r.content} for r in row_results]
            suffix = tool_suffix_ids(tokenizer, tool_messages, chat_template_kwargs)
            total = len(row.ids) + len(suffix)
            if total >= max_completion_length or (max_model_len and len(row.prompt) + total >= max_model_len):
                row.stop, row.pending = "length", []
                continue
            start = len(row.ids)
            row.ids += suffix
            row.mask += [0] * len(suffix)
            row.logps += [0.0] * len(suffix)
            row.entropy += [0.0] * len(suffix)
            row.messages += tool_messages
            for k, r in enumerate(row_results):  # one span for all of a round's results, on the first
                row.turns.append({"role": "tool", "start": start if k == 0 else len(row.ids), "end": len(row.ids),
                                  "name": r.name, "content": r.text, "error": r.error})
            row.pending = []
            next_rows.append(i)
        rounds += 1
        if not together(len(next_rows)):
            break
        if on_round is not None:
            on_round(rounds, len(next_rows))
        budget = together(max((max_completion_length - len(rows[i].ids) for i in next_rows), default=0))
        more = generate([rows[i].prompt + rows[i].ids for i in next_rows], 1, budget)
        if next_rows:
            _take(rows, next_rows, more, eos, tokenizer, max_completion_length)
        going = [i for i in next_rows if rows[i].pending]
    for row in rows:  # calls written after the last allowed round
        if row.pending:
            row.stop, row.pending = "tool_limit", []

    truncated = [not r.ids or (r.ids[-1] not in eos and r.stop != "tool_limit") for r in rows]
    for r, cut in zip(rows, truncated):
        if cut and r.stop == "answer":
            r.stop = "length"
    rollout = rollout_from_lists([r.prompt for r in rows], [r.ids for r in rows], truncated, pad_id, device,
                                 logprobs=[r.logps for r in rows])
    width = rollout.completion_ids.size(1)
    rollout.env_mask = torch.tensor([r.mask + [1] * (width - len(r.mask)) for r in rows], dtype=torch.long,
                                    device=rollout.completion_ids.device)
    if first.entropy is not None:
        rollout.entropy = torch.tensor([r.entropy + [0.0] * (width - len(r.entropy)) for r in rows],
                                       dtype=torch.float32, device=rollout.completion_ids.device)
    texts = tokenizer.batch_decode([r.ids for r in rows], skip_special_tokens=True)
    return Episodes(rollout=rollout, messages=[r.messages for r in rows], texts=texts, turns=[r.turns for r in rows],
                    summaries=[_summary(r) for r in rows], stats=tool_stats(rows))


def _take(rows: list[_Row], which, rollout: Rollout, eos: set[int], tokenizer, max_completion_length: int) -> None:
    """Append each row's newly generated turn (up to its EOS, within its budget) and read its calls."""
    ids = rollout.completion_ids.tolist()
    lengths = rollout.lengths.tolist()
    logps = rollout.logprobs.tolist()
    entropy = rollout.entropy.tolist() if rollout.entropy is not None else None
    for k, i in enumerate(which):
        row = rows[i]
        n = min(int(lengths[k]), max_completion_length - len(row.ids))
        turn = ids[k][:n]
        prefix = row.prompt + row.ids
        start = len(row.ids)
        row.ids += turn
        row.mask += [1] * n
        row.logps += logps[k][:n]
        row.entropy += entropy[k][:n] if entropy is not None else [0.0] * n
        parsed: ParsedTurn = parse_turn(tokenizer, turn, prefix, row.schemas)
        turn_record = {"role": "assistant", "start": start, "end": len(row.ids), "content": parsed.content}
        if parsed.tool_calls:
            turn_record["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in parsed.tool_calls]
        row.messages.append(parsed.message())
        ended = bool(turn) and turn[-1] in eos
        if not ended:
            row.stop = "length"  # cut by the budget: its calls (whole or not) are not run
        elif parsed.error:
            turn_record["parse_error"] = parsed.error
            row.stop = "parse_error"
        elif parsed.tool_calls:
            row.pending = list(parsed.tool_calls)
        row.turns.append(turn_record)


def _summary(row: _Row) -> dict:
    return {"calls": row.calls, "failures": row.failures, "turns": sum(t["role"] == "assistant" for t in row.turns),
            "masked_tokens": row.mask.count(0), "stop": row.stop}


def tool_stats(rows) -> dict[str, float]:
    """The round's ``tools/*`` metrics (TRL's call and failure frequencies, and ours).

    >>> a, b = _Row([1], {}, None), _Row([1], {}, None)
    >>> a.calls, a.failures, a.mask, a.turns = 2, 1, [1, 0, 0, 1], [{"role": "assistant"}] * 3
    >>> b.mask, b.turns, b.stop = [1], [{"role": "assistant"}], "parse_error"
    >>> s = tool_stats([a, b])
    >>> s["tools/call_frequency"], s["tools/failure_frequency"], s["tools/masked_tokens_mean"]
    (1.0, 0.5, 1.0)
    >>> s["tools/turns_mean"], s["tools/parse_error_frequency"]
    (2.0, 0.5)
    """
    n = max(len(rows), 1)
    calls = sum(r.calls for r in rows)
    return {
        "tools/call_frequency": calls / n,
        "tools/failure_frequency": sum(r.failures for r in rows) / calls if calls else 0.0,
        "tools/timeout_frequency": sum(r.timeouts for r in rows) / calls if calls else 0.0,
        "tools/parse_error_frequency": sum(r.stop == "parse_error" for r in rows) / n,
        "tools/turns_mean": sum(sum(t["role"] == "assistant" for t in r.turns) for r in rows) / n,
        "tools/masked_tokens_mean": sum(r.mask.count(0) for r in rows) / n,
        "tools/limit_ratio": sum(r.stop == "tool_limit" for r in rows) / n,
    }
