"""Reward plugins reloaded from their files: a fixed plugin takes effect in the process that
ran the broken one, and a plugin that no longer loads changes nothing."""

from __future__ import annotations

import math
import sys

import pytest

from conftest import write
from engine.rewards.scoring import RewardSpecError, build_reward_funcs, reload_reward_funcs, score


def values(funcs) -> list[float]:
    batch = score(funcs, None, ["p"], ["c"], {}, None, 0)
    return batch.per_func[0].tolist()


def plugin(value: str) -> str:
    # the same size whatever the value: an edit the (path, mtime, size) cache could miss
    return f"def fixed(prompts, completions, **kwargs):\n    return [{value} for _ in completions]\n"


def test_a_fixed_plugin_file_is_loaded_again(tmp_path):
    path = write(tmp_path / "rewards.py", plugin("1 / 0"))
    funcs = build_reward_funcs([f"{path}:fixed", "format"])
    assert math.isnan(values(funcs)[0])
    path.write_text(plugin("0.5  "))
    new, sources = reload_reward_funcs(funcs)
    assert values(new)[0] == 0.5 and sources == [str(path)]
    assert [f.name for f in new] == ["fixed", "format"] and new[1] is funcs[1]  # built-ins kept as they are


def test_a_plugin_module_is_reimported(tmp_path, monkeypatch):
    write(tmp_path / "reload_me_rewards.py", plugin("2.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        funcs = build_reward_funcs(["reload_me_rewards:fixed"])
        assert values(funcs) == [2.0]
        write(tmp_path / "reload_me_rewards.py", plugin("3.0"))
        new, sources = reload_reward_funcs(funcs)
        assert values(new) == [3.0] and sources == [str(tmp_path / "reload_me_rewards.py")]
        # a resumed run builds its functions with reload=True: the module cache is bypassed
        write(tmp_path / "reload_me_rewards.py", plugin("4.0"))
        assert values(build_reward_funcs(["reload_me_rewards:fixed"], reload=True)) == [4.0]
    finally:
        sys.modules.pop("reload_me_rewards", None)


def test_a_plugin_that_no_longer_loads_replaces_nothing(tmp_path):
    path = write(tmp_path / "rewards.py", plugin("1.0"))
    funcs = build_reward_funcs([f"{path}:fixed"])
    path.write_text("def fixed(prompts, completions, **kwargs)\n")  # a syntax error, half-way through a fix
    with pytest.raises(RewardSpecError, match="SyntaxError in rewards.py line 1"):
        reload_reward_funcs(funcs)
    assert values(funcs) == [1.0]
