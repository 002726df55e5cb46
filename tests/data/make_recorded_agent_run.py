"""Rebuild tests/data/recorded-agent-run/: three steps of a calculator run with tools, in the
run-directory format the engine writes for episodes (samples with ``turns`` and ``episode``,
``tools/*`` metrics), used by the dashboard's and inspector's episode tests and snapshots.

    python tests/data/make_recorded_agent_run.py

The episodes are written out here, not sampled, so every kind the views must show is there
and the files are the same at every rebuild: an answer without a call, a call that returns,
a call after some text, an unknown tool, a timed-out call, a malformed call (parse error)
and an episode stopped by ``max_tool_calling_iterations``. Tokens are single characters
plus the markup tokens, as a character-level tokenizer with tool tokens would make them;
the numbers (log-probs, entropies, losses, times) come from a seeded generator.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from engine.config.presets import load_preset  # noqa: E402
from engine.config.schema import dump_yaml  # noqa: E402

OUT = HERE / "recorded-agent-run"
ENV = "CalculatorEnv"  # the environment's reward is named after its class
START = 1795400000.0
PROMPTS = [(347, 589), (128, 256), (615, 274), (92, 408), (733, 161), (250, 499)]
# per step, per group, the episodes of its four completions (see episode() for what each is):
# the model calls the tool more often as it trains
KINDS = {
    1: [("direct_wrong", "direct", "parse_error", "unknown_tool"), ("direct_wrong", "direct_wrong", "direct", "timeout")],
    2: [("direct", "call", "parse_error", "direct_wrong"), ("call", "direct_wrong", "unknown_tool", "tool_limit")],
    3: [("direct", "call", "unknown_tool", "parse_error"), ("direct_wrong", "call_text", "timeout", "tool_limit")],
}
OVERRIDES = [
    "environment=calculator", "max_tool_calling_iterations=2", "max_steps=3", "num_generations=4",
    "per_device_train_batch_size=8", "max_completion_length=120", "log_completions_groups=2",
    "run_name=recorded-agent-run", "output_dir=runs/recorded-agent-run",
]


class Episode:
    """One episode being written: tokens, per-token numbers and turns, as the engine records them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tokens: list[str] = []
        self.logprobs: list[float | None] = []
        self.entropy: list[float | None] = []
        self.turns: list[dict] = []
        self.calls = self.failures = 0
        self.stop = "answer"

    def assistant(self, text: str = "", call: dict | str | None = None, parse_error: str | None = None) -> None:
        """An assistant turn: ``text``, then a tool call (a dict, or malformed JSON text), then EOS."""
        start = len(self.tokens)
        tokens = list(text)
        if call is not None:
            body = call if isinstance(call, str) else json.dumps(call)
            tokens += ["<tool_call>", *body, "</tool_call>"]
        tokens.append("<eos>")
        for token in tokens:
            self.tokens.append(token)
            self.logprobs.append(round(-self.rng.random() ** 3 * 2.5, 5) + 0.0)  # + 0.0: never -0.0
            self.entropy.append(round(self.rng.random() ** 2 * 1.8, 5))
        turn: dict = {"role": "assistant", "start": start, "end": len(self.tokens), "content": text}
        if isinstance(call, dict):
            turn["tool_calls"] = [call]
        if parse_error is not None:
            turn["parse_error"] = parse_error
            self.stop = "parse_error"
        self.turns.append(turn)

    def tool(self, name: str, result: str | None = None, error: str | None = None) -> None:
        """A tool turn: what the model is shown (the result, or the error as JSON); not trained on."""
        self.calls += 1
        self.failures += error is not None
        content = result if error is None else json.dumps({"error": error})
        start = len(self.tokens)
        for token in ["<tool_response>", *content, "</tool_response>"]:
            self.tokens.append(token)
            self.logprobs.append(None)
            self.entropy.append(None)
        self.turns.append({"role": "tool", "start": start, "end": len(self.tokens), "name": name,
                           "content": content, "error": error})

    def final_text(self) -> str:
        """The final assistant answer (what the accuracy reward reads)."""
        last = self.turns[-1]
        return last["content"] if last["role"] == "assistant" and not last.get("tool_calls") else ""

    def completion(self) -> dict:
        return {
            "text": "".join(t for t in self.tokens if t != "<eos>"),
            "tokens": self.tokens, "logprobs": self.logprobs, "entropy": self.entropy,
            "length": len(self.tokens), "truncated": False, "turns": self.turns,
            "episode": {"calls": self.calls, "failures": self.failures,
                        "turns": sum(t["role"] == "assistant" for t in self.turns),
                        "masked_tokens": sum(t["end"] - t["start"] for t in self.turns if t["role"] == "tool"),
                        "stop": self.stop},
        }


def episode(kind: str, a: int, b: int, rng: random.Random) -> tuple[dict, dict[str, float]]:
    """One completion of ``kind`` for the prompt ``a+b=``, and its rewards."""
    ep = Episode(rng)
    total = str(a + b)
    wrong = str(a + b + 10)
    add = {"name": "add", "arguments": {"a": a, "b": b}}
    used_tool = True
    if kind == "direct":
        ep.assistant(total)
        used_tool = False
    elif kind == "direct_wrong":
        ep.assistant(wrong)
        used_tool = False
    elif kind in ("call", "call_text"):
        ep.assistant("let me add\n" if kind == "call_text" else "", add)
        ep.tool("add", total)
        ep.assistant(total)
    elif kind == "unknown_tool":
        ep.assistant("", {"name": "mul", "arguments": {"a": a, "b": b}})
        ep.tool("mul", error="unknown tool 'mul'")
        ep.assistant(wrong)
    elif kind == "timeout":
        ep.assistant("", add)
        ep.tool("add", error="timed out after 10 s")
        ep.assistant(total)
    elif kind == "parse_error":
        ep.assistant("", json.dumps(add)[:-1], parse_error="invalid JSON in <tool_call>: "
                     "Expecting ',' delimiter: line 1 column 50 (char 49)")
    elif kind == "tool_limit":
        ep.assistant("", add)
        ep.tool("add", total)
        ep.assistant("", add)
        ep.tool("add", total)
        ep.stop = "tool_limit"
    answered = ep.final_text() == total
    env_reward = 1.0 if answered and used_tool and not ep.failures else (0.5 if answered else 0.0)
    return ep.completion(), {"accuracy": float(answered), ENV: env_reward}


def step_samples(step: int, rng: random.Random) -> tuple[dict, list[dict]]:
    groups, comps = [], []
    for g, kinds in enumerate(KINDS[step]):
        a, b = PROMPTS[(2 * (3 - step) + g) % len(PROMPTS)]  # the last step's first: 347+589
        made = []
        for kind in kinds:
            comp, rewards = episode(kind, a, b, rng)
            comp["rewards"] = rewards
            comp["reward"] = sum(rewards.values())
            made.append(comp)
        rewards = [c["reward"] for c in made]
        mean, std = statistics.fmean(rewards), statistics.pstdev(rewards)
        for comp in made:  # scale_rewards: group
            comp["advantage"] = round((comp["reward"] - mean) / (std + 1e-4), 5)
        ordered = [{k: c[k] for k in ("text", "reward", "rewards", "advantage", "length", "truncated", "tokens",
                                      "logprobs", "entropy", "turns", "episode")} for c in made]
        groups.append({"prompt": f"{a}+{b}=", "answer": str(a + b), "reward_mean": round(mean, 5),
                       "reward_std": round(std, 5), "completions": ordered})
        comps += made
    return {"step": step, "groups": groups}, comps


def step_metrics(step: int, comps: list[dict], rng: random.Random) -> dict:
    n = len(comps)
    eps = [c["episode"] for c in comps]
    calls = sum(e["calls"] for e in eps)
    timeouts = sum("timed out" in (t.get("error") or "") for c in comps for t in c["turns"] if t["role"] == "tool")
    lengths = [c["length"] for c in comps]
    rewards = [c["reward"] for c in comps]
    step_time = round(1.2 + rng.random(), 4)

    def col(name: str) -> list[float]:
        return [c["rewards"][name] for c in comps]

    record = {
        "step": step, "time": START + 10 + 2 * step,
        "reward": statistics.fmean(rewards), "reward_std": statistics.pstdev(rewards),
        "frac_reward_zero_std": 0.0, "advantage/std": round(0.9 + 0.05 * rng.random(), 5),
        "rewards/accuracy/mean": statistics.fmean(col("accuracy")), "rewards/accuracy/std": statistics.pstdev(col("accuracy")),
        f"rewards/{ENV}/mean": statistics.fmean(col(ENV)), f"rewards/{ENV}/std": statistics.pstdev(col(ENV)),
        "accuracy": statistics.fmean(col("accuracy")), "kl": round(0.004 * (step - 1) * (1 + rng.random()), 6),
        "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0, "clip_ratio/region_mean": 0.0,
        "entropy": round(0.5 + 0.2 * rng.random(), 5),
        "completions/mean_length": statistics.fmean(lengths), "completions/min_length": float(min(lengths)),
        "completions/max_length": float(max(lengths)), "completions/clipped_ratio": 0.0,
        "completions/mean_terminated_length": statistics.fmean(lengths),
        "loss": round(0.02 * (rng.random() - 0.3), 6), "grad_norm": round(4 + 3 * rng.random(), 5),
        "learning_rate": 5e-05, "num_tokens": float(sum(lengths) * step), "step_time": step_time,
        "completions_per_s": round(n / step_time, 5), "skipped_updates": 0.0, "beta": 0.04, "temperature": 1.0,
        "time/generate": round(step_time * 0.6, 5), "time/reward": 0.0005, "time/update": round(step_time * 0.3, 5),
        "elapsed_s": round(2.0 * step, 3), "eta_s": round(2.0 * (3 - step), 3),
        "tools/call_frequency": calls / n,
        "tools/failure_frequency": sum(e["failures"] for e in eps) / calls if calls else 0.0,
        "tools/timeout_frequency": timeouts / calls if calls else 0.0,
        "tools/parse_error_frequency": sum(e["stop"] == "parse_error" for e in eps) / n,
        "tools/turns_mean": sum(e["turns"] for e in eps) / n,
        "tools/masked_tokens_mean": sum(e["masked_tokens"] for e in eps) / n,
        "tools/limit_ratio": sum(e["stop"] == "tool_limit" for e in eps) / n,
    }
    return record


def events() -> list[dict]:
    def event(dt: float, step: int | None, kind: str, message: str, data: dict) -> dict:
        return {"time": START + dt, "step": step, "level": "info", "kind": kind, "message": message, "data": data}

    return [
        event(0, 0, "status", "loading model", {"state": "starting"}),
        event(4, None, "status", "model assets/tiny-model (1.06M params) on cpu", {}),
        event(10, 0, "status", "running", {"state": "running"}),
        event(17, 3, "status", "saving final model", {"state": "stopping"}),
        event(17.5, 3, "summary", "run finished", {"steps": 3, "max_steps": 3, "wall_time_s": 7.5,
                                                   "skipped_updates": 0, "final_model": "runs/recorded-agent-run/final",
                                                   "run_dir": "runs/recorded-agent-run"}),
        event(17.6, 3, "status", "finished at step 3", {"state": "finished"}),
    ]


def dump(records: list[dict]) -> str:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)


def main() -> None:
    rng = random.Random(1234)
    metrics, samples = [], []
    for step in (1, 2, 3):
        record, comps = step_samples(step, rng)
        samples.append(record)
        metrics.append(step_metrics(step, comps, rng))
    config = dump_yaml(load_preset("tiny-arithmetic", OVERRIDES)).replace(str(HERE.parents[1]) + "/", "")
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "checkpoints").mkdir(parents=True)
    (OUT / "checkpoints" / ".keep").write_text("")
    (OUT / "config.yaml").write_text(config, encoding="utf-8")
    (OUT / "metrics.jsonl").write_text(dump(metrics), encoding="utf-8")
    (OUT / "samples.jsonl").write_text(dump(samples), encoding="utf-8")
    (OUT / "events.jsonl").write_text(dump(events()), encoding="utf-8")


if __name__ == "__main__":
    main()
