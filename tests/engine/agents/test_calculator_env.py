"""CalculatorEnv follows TRL's environment_factory contract: reset, one typed tool, get_reward."""

from __future__ import annotations

import inspect

import pytest
from transformers.utils import get_json_schema

from engine.agents.calculator import CalculatorEnv


def started(prompt="347+589=", **row) -> CalculatorEnv:
    env = CalculatorEnv()
    assert env.reset(prompt=prompt, answer="936", **row) is None
    return env


def test_public_methods_are_reset_the_tool_and_get_reward():
    """Every public method but reset/get_reward becomes a tool, so there must be exactly one more."""
    public = {name for name, _ in inspect.getmembers(CalculatorEnv, inspect.isfunction) if not name.startswith("_")}
    assert public == {"reset", "add", "get_reward"}


def test_add_schema_comes_from_hints_and_docstring():
    schema = get_json_schema(CalculatorEnv().add)
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "add"
    assert fn["description"] == "Add two integers."
    assert fn["parameters"]["required"] == ["a", "b"]
    assert {k: v["type"] for k, v in fn["parameters"]["properties"].items()} == {"a": "integer", "b": "integer"}
    assert all(v["description"] for v in fn["parameters"]["properties"].values())
    assert fn["return"]["type"] == "integer"


def test_add_returns_the_sum():
    assert started().add(347, 589) == 936
    assert started().add(-5, 3) == -2


@pytest.mark.parametrize("a, b", [("347", 589), (347, 5.0), (True, 1)])
def test_add_rejects_non_integers(a, b):
    """A JSON string must not quietly concatenate ("347" + "589")."""
    env = started()
    with pytest.raises(TypeError, match="must be an integer"):
        env.add(a, b)
    assert env.get_reward() == 0.0


def test_reward_needs_a_call_with_the_problems_operands():
    env = started()
    assert env.get_reward() == 0.0  # answered without the tool
    env.add(300, 589)
    assert env.get_reward() == 0.0  # wrong operand
    env.add(347, 589)
    assert env.get_reward() == 1.0


def test_reward_accepts_either_order_and_zero_padded_prompts():
    env = started("047+005=")
    env.add(5, 47)
    assert env.get_reward() == 1.0


def test_reset_reads_a_conversational_prompt():
    env = started([{"role": "system", "content": "be brief"}, {"role": "user", "content": "12+34="}])
    env.add(12, 34)
    assert env.get_reward() == 1.0


def test_reset_clears_the_previous_episode():
    env = started()
    env.add(347, 589)
    env.reset(prompt="347+589=")
    assert env.get_reward() == 0.0


def test_a_prompt_that_is_not_an_addition_scores_zero():
    env = started("12*34=")
    env.add(12, 34)
    assert env.get_reward() == 0.0
