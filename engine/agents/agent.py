"""A run's tools and environments, and its rounds of episodes.

:class:`Agent` is built once at setup from ``tools`` and ``environment`` (or ``environments``)
— callables handed to the Python API, or specs a preset names — and checked before any
training: every tool's schema builds, tool names do not clash, and the model's chat template
can show tools and append their results. :meth:`Agent.rollout` makes one round: an
environment instance per row (reset with the row's columns), each row's prompt rendered with
its tools, then :func:`~engine.agents.episodes.run_episodes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.agents.environments import Environments, tool_methods
from engine.agents.episodes import Episodes, Generate, run_episodes
from engine.agents.templates import ToolTemplateError, check_tool_template, prompt_ids, with_observation
from engine.agents.tools import AgentError, Tool, ToolRunner, ToolSpecError

BUILTIN = {"calculator": "engine.agents.calculator:CalculatorEnv"}


def load_spec(spec, label: str):
    """The callable (function or class) a ``tools`` / ``environment`` / ``rollout_func`` spec
    names, or ``spec`` itself when it is already one. Raises ValueError with one line."""
    if callable(spec):
        return spec
    from engine.rewards.common import RewardSpecError
    from engine.rewards.plugins import _resolve_plugin

    target = BUILTIN.get(spec, spec)
    try:
        return _resolve_plugin(target, factory=True)
    except RewardSpecError as exc:
        raise AgentError(str(exc).replace("reward plugin", label, 1)) from None


@dataclass
class RoundOfEpisodes:
    episodes: Episodes
    environments: list | None  # one instance per row (reward functions get them), None without environments
    failed: list[str | None]  # per row: why its environment could not start it (reset raised), else None


class Agent:
    """Tools (``tools``: callables) and environments (``environment``: a factory, or a dict of
    them by name) a run's episodes use; ``timeout``: seconds per tool call."""

    def __init__(self, tools: list[Callable], environment=None, *, timeout: float = 60.0,
                 max_iterations: int | None = None) -> None:
        self.tools = [Tool.of(fn) for fn in tools]
        self.environments = Environments(environment) if environment else None
        self.max_iterations = max_iterations
        self.runner = ToolRunner(timeout)
        names = [t.name for t in self.tools]
        clash = {n for n in names if names.count(n) > 1}
        if clash:
            raise ToolSpecError(f"tools: two tools are named {sorted(clash)[0]!r}; the model calls tools by name")
        self._schemas: dict = {}
        for name in self.environments.names() if self.environments else [None]:
            for tool in self._tools_for(name, None).values():
                self._schemas[tool.name] = tool.schema()  # raises ToolSpecError naming the tool
        if not self._schemas and not self.environments:
            raise ToolSpecError("tools: no tools to call")

    @classmethod
    def from_config(cls, cfg, given_tools=None, given_environment=None) -> "Agent | None":
        """The run's agent, from what the API handed in or the config names; None without tools."""
        tools = list(given_tools or []) or [load_spec(s, "tool") for s in cfg.tools]
        environment = given_environment
        if environment is None and cfg.environments:
            environment = {name: load_spec(s, f"environments.{name}") for name, s in cfg.environments.items()}
        elif environment is None and cfg.environment:
            environment = load_spec(cfg.environment, "environment")
        if not tools and not environment:
            return None
        return cls(tools, environment, timeout=cfg.tool_timeout, max_iterations=cfg.max_tool_calling_iterations)

    def check_template(self, tokenizer) -> None:
        problem = check_tool_template(tokenizer)
        if problem:
            raise ToolTemplateError(f"tools: {problem}. Use a model whose chat template supports tool calling "
                                    "(for example Qwen2.5/Qwen3 instruct models)")

    def reward_functions(self) -> list[Callable]:
        """The environments' ``get_reward`` as reward functions (weight 1, named after the class)."""
        return self.environments.reward_functions() if self.environments else []

    def _tools_for(self, name, instance) -> dict[str, Tool]:
        tools = {t.name: t for t in self.tools}
        if self.environments is not None:
            probe = instance if instance is not None else self.environments.pool[name][0]
            for tool in tool_methods(probe):
                tools.setdefault(tool.name, tool)
        return tools

    def rollout(self, rows: list[dict], num_generations: int, renderer, tokenizer, generate: Generate, *,
                max_completion_length: int, max_model_len: int | None, pad_id: int, eos_ids: list[int],
                on_round=None, device="cpu", most_of=None) -> RoundOfEpisodes:
        """Episodes for ``rows`` (``num_generations`` per row), each with its own environment."""
        each = [r for r in rows for _ in range(num_generations)]
        envs = self.environments.take(each) if self.environments else None
        failed: list[str | None] = [None] * len(each)
        prompts, tools, schemas = [], [], []
        for i, row in enumerate(each):
            observation = None
            if envs is not None:
                try:
                    observation = self.environments.reset(envs[i], row)
                except Exception as exc:  # noqa: BLE001 - costs this rollout, not the round
                    failed[i] = f"{type(envs[i]).__name__}.reset raised {type(exc).__name__}: {exc}"
            row_tools = self._tools_for(self.environments.which(row) if envs is not None else None,
                                        envs[i] if envs is not None else None)
            row_schemas = [self._schemas[name] for name in row_tools]
            if envs is None and i % num_generations:  # a group without environments: one prompt for all
                prompts.append(prompts[-1])
            else:
                messages = with_observation(renderer.messages(row["prompt"]), observation)
                ids = prompt_ids(tokenizer, messages, row_schemas, renderer.chat_template_kwargs)
                limit = renderer.max_prompt_length
                if limit is not None and len(ids) > limit:
                    renderer.cut.append(len(ids))
                    ids = ids[-limit:]
                prompts.append(ids)
            tools.append(row_tools)
            schemas.append(row_schemas)
        episodes = run_episodes(generate, tokenizer, prompts, num_generations, tools, self.runner,
                                max_completion_length=max_completion_length, max_iterations=self.max_iterations,
                                max_model_len=max_model_len, pad_id=pad_id, eos_ids=eos_ids, schemas=schemas,
                                chat_template_kwargs=renderer.chat_template_kwargs, on_round=on_round, device=device,
                                most_of=most_of)
        for i, why in enumerate(failed):
            if why:
                episodes.summaries[i]["stop"] = "env_error"
                episodes.summaries[i]["error"] = why
        return RoundOfEpisodes(episodes=episodes, environments=envs, failed=failed)

    def close(self) -> None:
        self.runner.close()
