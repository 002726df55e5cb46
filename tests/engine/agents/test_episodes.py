"""Multi-turn episodes: which tokens are trained on, tools that fail, several environments,
rollout_func — with a scripted backend (tests/helpers/scripted_agent.py), so each episode's
turns are known in advance, and the real tiny model in the trainer."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path

import pytest

from conftest import TINY_MODEL, tiny_config, train
from engine.agents.agent import Agent
from engine.agents.episodes import run_episodes
from engine.agents.tools import Tool, ToolCall, ToolRunner
from engine.data.prompts import PromptData
from engine.rollout.backend import SamplingParams

sys.path.append(str(Path(__file__).resolve().parents[2] / "helpers"))
from scripted_agent import ScriptedBackend, call, operands, tool_tokenizer  # noqa: E402

ROWS = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(1, 9) for b in range(1, 9)]


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def broken(a: int) -> int:
    """Always fails.

    Args:
        a: Ignored.
    """
    raise ValueError("no such luck")


_never = threading.Event()


def stuck(a: int) -> int:
    """Never returns (until the test process ends).

    Args:
        a: Ignored.
    """
    _never.wait()
    return a


@pytest.fixture(scope="module")
def tok():
    return tool_tokenizer(TINY_MODEL)


def episodes_of(tok, script, tools, prompts=("3+4=",), g=2, max_len=200, max_iterations=None, timeout=5.0):
    backend = ScriptedBackend(tok, script, tok.pad_token_id, tok.eos_token_id)
    runner = ToolRunner(timeout)
    schemas = [Tool.of(f).schema() for f in tools]
    ids = [tok.apply_chat_template([{"role": "user", "content": p}], tools=schemas, tokenize=False,
                                   add_generation_prompt=True) for p in prompts]
    ids = [tok(text, add_special_tokens=False)["input_ids"] for text in ids]
    rows = [i for i in ids for _ in range(g)]
    table = {t.name: t for t in map(Tool.of, tools)}

    def generate(prompt_ids, n, max_new):
        return backend.generate(prompt_ids, n, SamplingParams(max_new_tokens=max_new))

    return run_episodes(generate, tok, rows, g, [table] * len(rows), runner, max_completion_length=max_len,
                        max_iterations=max_iterations, max_model_len=None, pad_id=tok.pad_token_id,
                        eos_ids=[tok.eos_token_id])


# ---------------------------------------------------------------- masking


def test_env_mask_covers_exactly_the_models_tokens(tok):
    """Row 0 calls add(3, 4) then answers; row 1 answers at once. The tool result's tokens —
    the template's `<tool_response>7</tool_response>` — are the only ones with env_mask 0."""
    ep = episodes_of(tok, lambda ctx, row: call("add", a=3, b=4) if row == 0 else "7", [add])
    ids = ep.rollout.completion_ids[0].tolist()
    mask = ep.rollout.env_mask[0].tolist()
    n = int(ep.rollout.lengths[0])
    masked = [t for t, m in zip(ids[:n], mask[:n]) if m == 0]
    assert tok.decode(masked) == "<tool_response>7</tool_response>"
    model = tok.decode([t for t, m in zip(ids[:n], mask[:n]) if m == 1], skip_special_tokens=True)
    assert model == call("add", a=3, b=4) + "7"
    tool = ep.turns[0][1]
    assert tool["role"] == "tool" and sum(mask[tool["start"]:tool["end"]]) == 0 and tool["end"] - tool["start"] == len(masked)
    assert ep.summaries[0] == {"calls": 1, "failures": 0, "turns": 2, "masked_tokens": len(masked), "stop": "answer"}
    assert ep.rollout.env_mask[1, : int(ep.rollout.lengths[1])].eq(1).all()
    assert ep.messages[0][1] == {"role": "tool", "name": "add", "content": "7"}
    assert ep.messages[0][-1] == {"role": "assistant", "content": "7"}
    assert int(ep.rollout.model_lengths[0]) == n - len(masked)


@pytest.mark.slow
def test_the_loss_gets_no_gradient_from_tool_result_tokens(tok, tmp_path, monkeypatch):
    """Through a real optimizer step: the mask the loss is given is 0 on exactly the episodes'
    tool-result tokens, and d loss / d logp there is 0 (non-zero on the model's tokens)."""
    from engine.training import micro_batch

    seen = []
    real = micro_batch.grpo.policy_loss

    def spy(logps, *args, **kwargs):
        mask = args[2]
        logps.register_hook(lambda g: seen.append((mask.detach().clone(), g.detach().clone())))
        return real(logps, *args, **kwargs)

    monkeypatch.setattr(micro_batch.grpo, "policy_loss", spy)

    def script(ctx, row):
        a, b = operands(ctx)
        return call("add", a=a, b=b) if row % 2 == 0 else str(a + b + row % 3)

    run = _train(tok, tmp_path, script, [add], max_steps=1, reward_funcs=["answer_accuracy"])
    samples = [c for rec in _samples(run) for grp in rec["groups"] for c in grp["completions"]]
    model_tokens = sum(c["length"] - c["episode"]["masked_tokens"] for c in samples)
    assert sum(c["episode"]["masked_tokens"] for c in samples) > 0
    assert sum(float(mask.sum()) for mask, _ in seen) == model_tokens
    for mask, grad in seen:
        assert grad[mask == 0].abs().sum() == 0
        assert grad[mask == 1].abs().sum() > 0


# ---------------------------------------------------------------- tools that misbehave


def test_a_tool_that_raises_hangs_or_is_unknown_gives_the_model_an_error():
    runner = ToolRunner(timeout=0.5)
    tools = {t.name: t for t in map(Tool.of, [add, broken, stuck])}
    (results,) = runner.run([([ToolCall("broken", {"a": 1}), ToolCall("stuck", {"a": 1}),
                               ToolCall("mul", {"a": 1}), ToolCall("add", {"a": 2, "b": 5}),
                               ToolCall("add", {"x": 1})], tools)])
    assert results[0].error == "ValueError: no such luck" and results[0].text == "{'error': 'ValueError: no such luck'}"
    assert results[1].timed_out and results[1].error == "timed out after 0.5 s"
    assert results[2].error == "Tool mul not found."
    assert results[3].error is None and results[3].text == "7"
    assert results[4].error.startswith("TypeError")


def test_async_tools_of_a_round_run_concurrently():
    """Two async calls that each wait for the other to start: only concurrency finishes both."""
    arrived = []

    async def meet(name: str) -> str:
        """Wait for the other caller.

        Args:
            name: Who arrives.
        """
        arrived.append(name)
        for _ in range(200):
            if len(arrived) == 2:
                return f"met {name}"
            await asyncio.sleep(0.01)
        raise RuntimeError("alone")

    tools = {"meet": Tool.of(meet)}
    results = ToolRunner(timeout=10).run([([ToolCall("meet", {"name": "a"})], tools),
                                          ([ToolCall("meet", {"name": "b"})], tools)])
    assert [r[0].text for r in results] == ["met a", "met b"]


def test_failures_and_malformed_calls_are_counted_and_the_episode_goes_on(tok):
    def script(ctx, row):
        return [call("broken", a=1), '<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>',
                call("stuck", a=1), "7"][row]

    ep = episodes_of(tok, script, [add, broken, stuck], g=4, timeout=0.5)
    assert [s["stop"] for s in ep.summaries] == ["answer", "parse_error", "answer", "answer"]
    assert ep.turns[0][1]["error"] == "ValueError: no such luck"
    assert ep.turns[2][1]["error"] == "timed out after 0.5 s"
    assert "not valid JSON" in ep.turns[1][0]["parse_error"]
    assert ep.stats["tools/call_frequency"] == 0.5
    assert ep.stats["tools/failure_frequency"] == 1.0
    assert ep.stats["tools/timeout_frequency"] == 0.5
    assert ep.stats["tools/parse_error_frequency"] == 0.25
    # the model was shown the error and went on (the scripted model answers "?" to it)
    assert ep.messages[0][-1]["content"] == "?"


def test_the_tool_round_limit_and_the_length_budget_end_episodes(tok):
    loop = lambda ctx, row: call("add", a=1, b=1)  # noqa: E731 - calls again whatever it is told
    backend_answers_calls = episodes_of(tok, loop, [add], g=1, max_iterations=0)
    assert backend_answers_calls.summaries[0]["stop"] == "tool_limit"
    assert backend_answers_calls.summaries[0]["calls"] == 0
    short = episodes_of(tok, loop, [add], g=1, max_len=60)
    assert short.summaries[0]["stop"] == "length" and short.rollout.truncated[0]


# ---------------------------------------------------------------- environments


class Adder:
    def reset(self, **row):
        self.calls = []
        return " (use add)"

    def add(self, a: int, b: int) -> int:
        """Add.

        Args:
            a: First.
            b: Second.
        """
        self.calls.append((a, b))
        return a + b

    def get_reward(self) -> float:
        return float(len(self.calls))


class Doubler:
    def reset(self, **row):
        self.row = row

    def double(self, x: int) -> int:
        """Double.

        Args:
            x: The number.
        """
        return 2 * x


def test_environments_by_name_route_each_row_to_its_own(tok):
    agent = Agent([], {"adder": Adder, "doubler": Doubler})
    rows = [{"prompt": "3+4=", "environment": "adder"}, {"prompt": "5+6=", "environment": "doubler"}]
    prompts_seen = []

    def generate(prompt_ids, n, max_new):
        prompts_seen.extend(tok.decode(p) for p in prompt_ids)
        backend = ScriptedBackend(tok, lambda ctx, row: call("add", a=3, b=4) if "adder" in ctx or "add\n" in ctx
                                  else call("double", x=5), tok.pad_token_id, tok.eos_token_id)
        return backend.generate(prompt_ids, n, SamplingParams(max_new_tokens=max_new))

    from engine.data.prompts import PromptRenderer
    made = agent.rollout(rows, 1, PromptRenderer(tok), tok, generate, max_completion_length=100, max_model_len=128,
                         pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    assert prompts_seen[0].startswith("<bos>tools: add\n3+4= (use add)")
    assert prompts_seen[1].startswith("<bos>tools: double\n5+6=")
    assert [type(e).__name__ for e in made.environments] == ["Adder", "Doubler"]
    assert made.environments[0].calls == [(3, 4)]
    assert [t["content"] for t in made.episodes.turns[1] if t["role"] == "tool"] == ["10"]
    (reward,) = agent.reward_functions()
    assert reward.__name__ == "Adder"
    assert reward(environments=made.environments) == [1.0, None]


def test_a_row_without_a_known_environment_is_named():
    agent = Agent([], {"adder": Adder})
    with pytest.raises(ValueError, match="environment='mul', which is not one of adder"):
        agent.environments.check_rows([{"prompt": "x", "environment": "mul"}])


# ---------------------------------------------------------------- whole runs


def _train(tok, tmp_path, script, tools, *, max_steps=2, environment=None, rollout_func=None, **kw):
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(tmp_path, f"max_steps={max_steps}", "num_generations=4", "per_device_train_batch_size=8",
                      "max_completion_length=100", "log_completions_groups=2")
    trainer, _ = train(cfg, model=AutoModelForCausalLM.from_pretrained(TINY_MODEL), tokenizer=tok,
                       data=PromptData.from_rows(ROWS, ROWS[:4]), tools=tools, environment_factory=environment,
                       rollout_func=rollout_func, rollout_backend=ScriptedBackend.factory(tok, script), **kw)
    return trainer.run_dir


def _samples(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_an_environment_run_trains_with_its_reward_and_writes_turns(tok, tmp_path):
    def script(ctx, row):
        a, b = operands(ctx)
        return call("add", a=a, b=b) if row % 2 == 0 else str(a + b)

    run = _train(tok, tmp_path, script, None, environment=Adder, reward_funcs=["answer_accuracy"])
    metrics = _metrics(run)
    assert [m["step"] for m in metrics] == [1, 2]
    assert metrics[-1]["rewards/Adder/mean"] == 0.5  # half the episodes called add once
    assert metrics[-1]["tools/call_frequency"] == 0.5
    assert metrics[-1]["rewards/answer_accuracy/mean"] == 1.0
    comp = _samples(run)[-1]["groups"][0]["completions"]
    assert comp[0]["rewards"]["Adder"] == 1.0 and comp[1]["rewards"]["Adder"] == 0.0
    roles = [t["role"] for t in comp[0]["turns"]]
    assert roles == ["assistant", "tool", "assistant"] and comp[0]["episode"]["stop"] == "answer"
    tool = comp[0]["turns"][1]
    assert all(v is None for v in comp[0]["logprobs"][tool["start"]:tool["end"]])
    assert all(v is not None for v in comp[0]["logprobs"][: tool["start"]])


@pytest.mark.slow
def test_rollout_func_returning_trls_fields_trains(tok, tmp_path):
    """The user's function makes the round: G completions per prompt, an env_mask hiding an
    environment's text from the loss, and a column the reward function reads."""
    seen = {}

    def rollout_func(prompts, trainer):
        seen["prompts"], seen["trainer"] = list(prompts), trainer
        g = trainer.args.num_generations
        tk = trainer.processing_class
        prompt_ids, completion_ids, logprobs, env_mask, tag = [], [], [], [], []
        for p in prompts:
            for k in range(g):
                ids = tk(str(k) + "|env|" + str(k), add_special_tokens=False)["input_ids"] + [tk.eos_token_id]
                prompt_ids.append(tk(p)["input_ids"])
                completion_ids.append(ids)
                logprobs.append([-1.0] * len(ids))
                env_mask.append([1] + [0] * 5 + [1] * (len(ids) - 6))
                tag.append(k)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs,
                "env_mask": env_mask, "tag": tag}

    def by_tag(prompts, completions, tag, **kwargs):
        return [float(t) for t in tag]

    run = _train(tok, tmp_path, None, None, rollout_func=rollout_func, reward_funcs=[by_tag])
    assert len(seen["prompts"]) == 2 and seen["trainer"].num_generations == 4  # each prompt once, G back
    metrics = _metrics(run)
    assert metrics[-1]["rewards/by_tag/mean"] == 1.5
    assert metrics[-1]["completions/mean_length"] == 3.0  # "k", "k" and <eos>: the "|env|" text is masked
    comp = _samples(run)[-1]["groups"][0]["completions"][3]
    assert comp["text"] == "3|env|3" and comp["reward"] == 3.0
    assert comp["logprobs"][1:6] == [None] * 5


# ---------------------------------------------------------------- presets and the Python API


def test_a_preset_names_tools_and_an_environment_by_file(tmp_path):
    from engine.config.presets import load_preset

    (tmp_path / "mytools.py").write_text(
        'def add(a: int, b: int) -> int:\n    """Add.\n\n    Args:\n        a: x\n        b: y\n    """\n    return a + b\n')
    (tmp_path / "myenv.py").write_text(
        "class Env:\n    def reset(self, **row):\n        return None\n\n    def get_reward(self):\n        return 1.0\n")
    preset = tmp_path / "agent.yaml"
    preset.write_text("model_name_or_path: assets/tiny-model\ndataset: {task: arithmetic}\nreward_funcs: []\n"
                      "tools: [mytools.py:add]\nenvironment: myenv.py:Env\nmax_tool_calling_iterations: 3\n")
    cfg = load_preset(str(preset))
    assert cfg.tools == [f"{tmp_path / 'mytools.py'}:add"] and cfg.environment == f"{tmp_path / 'myenv.py'}:Env"
    agent = Agent.from_config(cfg)
    assert [t.name for t in agent.tools] == ["add"] and agent.max_iterations == 3
    assert [f.__name__ for f in agent.reward_functions()] == ["Env"]


def test_bad_agent_settings_are_named_before_anything_loads(tmp_path):
    from engine.config.presets import load_preset
    from engine.config.schema import ConfigError

    preset = tmp_path / "bad.yaml"
    preset.write_text("dataset: {task: arithmetic}\ntools: [missing.py:add]\nenvironment: calculater\n"
                      "rollout_func: x:1\n")
    with pytest.raises(ConfigError) as err:
        load_preset(str(preset))
    text = str(err.value)
    assert "tools[0]: file not found: missing.py" in text
    assert "environment: 'calculater'" in text and "did you mean 'calculator'" in text
    assert "rollout_func: 'x:1' is not" in text


def test_a_tool_without_a_schema_is_refused_with_its_name():
    def untyped(a):
        return a

    with pytest.raises(ValueError, match="tool 'untyped': its schema cannot be built"):
        Agent([untyped])


def test_a_template_that_cannot_show_tools_is_refused():
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(TINY_MODEL)
    plain.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        Agent([add]).check_template(plain)


@pytest.mark.slow
def test_the_python_api_takes_an_environment_as_the_only_reward(tmp_path, tok):
    from transformers import AutoModelForCausalLM

    from engine.api import GRPOConfig, GRPOTrainer

    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, num_generations=4, per_device_train_batch_size=8,
                      max_completion_length=12, max_tool_calling_iterations=1, report_to="none", save_steps=0)
    trainer = GRPOTrainer(AutoModelForCausalLM.from_pretrained(TINY_MODEL), args=args, train_dataset=ROWS,
                          processing_class=tok, environment_factory=Adder)
    trainer.train()
    (metrics,) = _metrics(trainer.run_dir)
    assert "rewards/Adder/mean" in metrics and "tools/call_frequency" in metrics


def test_processes_sharing_a_generation_engine_take_the_same_rounds(tok):
    """With a collective backend, a process whose episodes ended still calls generate (with no
    prompts) while another process's episodes go on, so tensor-parallel engines stay in step."""
    calls = []

    def generate(prompt_ids, n, max_new):
        calls.append(len(prompt_ids))
        if not prompt_ids:
            return None
        backend = ScriptedBackend(tok, lambda ctx, row: "7", tok.pad_token_id, tok.eos_token_id)
        return backend.generate(prompt_ids, n, SamplingParams(max_new_tokens=max_new))

    ids = tok("3+4=")["input_ids"]
    ep = run_episodes(generate, tok, [ids], 1, [{}], ToolRunner(1), max_completion_length=50, max_iterations=None,
                      max_model_len=None, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id],
                      most_of=lambda n: max(n, 1) if len(calls) < 3 else n)  # another process goes on for 2 rounds
    assert calls == [1, 0, 0] and ep.summaries[0]["stop"] == "answer"
