"""Environments (TRL 1.16's ``environment_factory``): one instance per rollout.

An environment is any class with a ``reset(**row)`` method; every other public method is a
tool the model may call on *its* instance; an optional ``get_reward()`` scores the finished
episode from the environment's state. ``reset`` gets the dataset row's columns and may return
text, which is appended to the prompt's last message.

The factory is one callable (every example uses it) or a dict ``{name: factory}``: then each
row's ``environment`` column picks its environment, and only that environment's tools are
shown in its prompt. Instances are made once and reset for each rollout (a pool that grows
to the most a round needs at once). An environment whose ``reset`` raises costs that rollout:
it is not generated and scores nothing (advantage 0).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from engine.agents.tools import AgentError, Tool

NOT_TOOLS = ("reset", "get_reward")
ENVIRONMENT_COLUMN = "environment"


class EnvironmentSpecError(AgentError):
    """An environment factory that cannot be used (no reset, an unknown name)."""


def tool_methods(instance: Any) -> list[Tool]:
    """The public methods of an environment, each a tool (looked up on the class, so reading
    them evaluates no property)."""
    return [Tool.of(getattr(instance, name))
            for name, _ in inspect.getmembers(type(instance), predicate=inspect.isfunction)
            if name not in NOT_TOOLS and not name.startswith("_")]


class Environments:
    """The run's environment factories, their pooled instances, and their rewards."""

    def __init__(self, factory: Callable | dict[str, Callable]) -> None:
        self.multi = isinstance(factory, dict)
        self.factories: dict[str | None, Callable] = dict(factory) if self.multi else {None: factory}
        if not self.factories:
            raise EnvironmentSpecError("environment: the dict of environments is empty")
        self.pool: dict[str | None, list] = {}
        self.tool_names: dict[str | None, list[str]] = {}
        self.reward_types: list[type] = []  # classes whose get_reward is a reward source, once each
        for name, make in self.factories.items():
            label = "environment" if name is None else f"environment.{name}"
            if not callable(make):
                raise EnvironmentSpecError(f"{label}: {make!r} is not a class or factory")
            instance = make()
            if not callable(getattr(instance, "reset", None)):
                raise EnvironmentSpecError(f"{label}: {type(instance).__name__} has no reset() method "
                                        "(an environment needs reset(**row), its tools and optionally get_reward())")
            self.pool[name] = [instance]
            self.tool_names[name] = [t.name for t in tool_methods(instance)]
            if callable(getattr(instance, "get_reward", None)) and type(instance) not in self.reward_types:
                self.reward_types.append(type(instance))

    def names(self) -> list[str | None]:
        return list(self.factories)

    def which(self, row: dict) -> str | None:
        """The environment a row uses: its ``environment`` column with several, else the only one."""
        if not self.multi:
            return None
        name = row.get(ENVIRONMENT_COLUMN)
        if name not in self.factories:
            known = ", ".join(map(str, self.factories))
            if ENVIRONMENT_COLUMN not in row:
                raise EnvironmentSpecError(f"dataset: with several environments each row needs an "
                                        f"{ENVIRONMENT_COLUMN!r} column naming one of {known}")
            raise EnvironmentSpecError(f"dataset: a row has environment={name!r}, which is not one of {known}")
        return name

    def check_rows(self, rows: list[dict]) -> None:
        """Every row names an environment that exists (raises EnvironmentSpecError for the first that does not)."""
        for row in rows:
            self.which(row)

    def take(self, rows: list[dict]) -> list:
        """One instance per row, from the pool (grown when a round needs more at once)."""
        handed: dict[str | None, int] = {}
        out = []
        for row in rows:
            name = self.which(row)
            pool, index = self.pool[name], handed.get(name, 0)
            if index == len(pool):
                pool.append(self.factories[name]())
            handed[name] = index + 1
            out.append(pool[index])
        return out

    def reset(self, instance, row: dict):
        """``instance.reset(**row)`` (without the routing column when there are several)."""
        kwargs = {k: v for k, v in row.items() if k != ENVIRONMENT_COLUMN} if self.multi else dict(row)
        return instance.reset(**kwargs)

    def reward_functions(self) -> list[Callable]:
        """One reward function per environment class with ``get_reward``, named after the class:
        it scores the rollouts of that exact class and gives None to the others (so mixing
        environments that own their reward with ones that do not is safe). A ``get_reward``
        that raises gives None for that rollout."""
        funcs = []
        for kind in self.reward_types:
            funcs.append(_env_reward(kind))
        return funcs


def _env_reward(kind: type) -> Callable:
    is_async = inspect.iscoroutinefunction(getattr(kind, "get_reward"))

    def scores(environments: list) -> list:
        out = []
        for env in environments or []:
            if env is None or type(env) is not kind:
                out.append(None)
                continue
            try:
                out.append(env.get_reward())
            except Exception:  # noqa: BLE001 - costs that rollout's reward, not the batch's
                out.append(None)
        return out

    if is_async:
        async def get_reward(environments=None, **kwargs):
            values = scores(environments)

            async def one(v):
                try:
                    return await v if inspect.isawaitable(v) else v
                except Exception:  # noqa: BLE001
                    return None
            return list(await asyncio.gather(*(one(v) for v in values)))
    else:
        def get_reward(environments=None, **kwargs):
            return scores(environments)
    get_reward.__name__ = kind.__name__
    get_reward.__qualname__ = kind.__name__
    get_reward.environment_reward = True  # runs in the trainer's process, beside the environments
    return get_reward
