"""TRL's reward-function contract, with client code written the way TRL's docs and open-r1 write
reward functions: ``trainer_state``, ``log_metric`` and ``log_extra`` passed, ``async def``
awaited concurrently, dotted ``pkg.module.function`` names and factories with arguments."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import tiny_config, train, write
from engine.config.presets import config_from_yaml
from engine.rewards.scoring import RewardFunction, build_reward_funcs, check_reward_spec, score

CLIENT = '''
import asyncio


def progress_reward(completions, trainer_state, log_metric, log_extra, **kwargs):
    """Shaped by training progress, as TRL's docs show trainer_state being used."""
    progress = trainer_state.global_step / trainer_state.max_steps
    log_metric("curriculum/progress", progress)
    log_metric("curriculum/epoch_seen", float(trainer_state.epoch >= 0))
    log_extra("stage", ["early" if progress < 0.5 else "late"] * len(completions))
    log_extra("history_len", [len(trainer_state.log_history)] * len(completions))
    return [progress] * len(completions)


async def judged_reward(completions, **kwargs):
    """An LLM-judge stand-in: awaits, then scores."""
    await asyncio.sleep(0)
    return [float(len(c) > 0) for c in completions]


def get_scaled_length_reward(scale, offset=0.0):
    """A factory, like open-r1's get_cosine_scaled_reward(...)."""
    return _ScaledLength(scale, offset)


class _ScaledLength:
    __name__ = "scaled_length"

    def __init__(self, scale, offset):
        self.scale, self.offset = scale, offset

    def __call__(self, completions, completion_ids, **kwargs):
        return [self.offset + self.scale * len(ids) for ids in completion_ids]


def no_kwargs(completions):
    return [0.0] * len(completions)
'''


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def client(tmp_path, monkeypatch):
    """The client file, and a package ``club_rewards.shaping`` on sys.path for dotted names."""
    write(tmp_path / "pkgs" / "club_rewards" / "__init__.py", "")
    write(tmp_path / "pkgs" / "club_rewards" / "shaping.py", CLIENT)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    return write(tmp_path / "client_rewards.py", CLIENT)


@pytest.mark.slow
def test_a_run_passes_trainer_state_and_records_log_metric_and_log_extra(tmp_path, client):
    cfg = tiny_config(tmp_path, "max_steps=4", "log_completions_groups=1")
    cfg.reward_funcs = [
        "accuracy",
        "club_rewards.shaping.progress_reward",  # a dotted name, as TRL and open-r1 write them
        f"{client}:judged_reward",
        {"func": f"{client}:get_scaled_length_reward", "kwargs": {"scale": 2.0, "offset": 1.0}},
    ]
    trainer, _ = train(cfg)
    assert trainer.summary.get("error") is None, trainer.summary
    metrics = [m for m in read(trainer.run_dir / "metrics.jsonl") if m.get("step", 0) > 0]
    assert [m["curriculum/progress"] for m in metrics] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert all(m["curriculum/epoch_seen"] == 1.0 for m in metrics)
    assert [m["rewards/progress_reward/mean"] for m in metrics] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert all(m["rewards/judged_reward/mean"] >= 0 for m in metrics)
    for m in metrics:  # 1 + 2 × tokens, at most 8 tokens (max_completion_length)
        assert 1.0 < m["rewards/scaled_length/mean"] <= 17.0
    samples = read(trainer.run_dir / "samples.jsonl")
    extras = [c["extra"] for s in samples for g in s["groups"] for c in g["completions"]]
    assert extras and {e["stage"] for e in extras} == {"early", "late"}
    assert sorted({e["history_len"] for e in extras}) == [0, 1, 2, 3]  # log_history grows a step at a time


def test_async_reward_functions_are_awaited_concurrently():
    first, second = asyncio.Event(), asyncio.Event()

    async def left(completions, **kwargs):  # finishes only once `right` has started
        first.set()
        await asyncio.wait_for(second.wait(), 30)
        return [1.0] * len(completions)

    async def right(completions, **kwargs):
        second.set()
        await asyncio.wait_for(first.wait(), 30)
        return [None] * len(completions)

    batch = score([RewardFunction("left", left), RewardFunction("right", right)], None, ["p", "p"], ["a", "b"],
                  {}, [[1], [2]], 1)
    assert batch.errors == []
    assert batch.per_func[:, 0].tolist() == [1.0, 1.0] and batch.total.tolist() == [1.0, 1.0]  # None ignored


def test_every_call_gets_trls_keyword_arguments():
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        kwargs["log_metric"]("m", 2)
        kwargs["log_extra"]("col", ["x"])
        return [0.5]

    batch = score([RewardFunction("spy", spy)], None, ["p"], ["c"], {"solution": ["42"]}, [[7]], 3)
    assert {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric",
            "solution"} <= set(seen)
    assert seen["trainer_state"].global_step == 2 and seen["completion_ids"] == [[7]]
    assert batch.metrics == {"m": [2.0]} and batch.extra == {"col": ["x"]}


def test_a_factory_is_called_with_its_kwargs_only_when_the_run_builds_it(tmp_path, client):
    marker = tmp_path / "called"
    write(tmp_path / "factory.py", f'''
def make(threshold, **ignored):
    open({str(marker)!r}, "w").close()
    def over(completions, **kwargs):
        return [float(len(c) > threshold) for c in completions]
    return over
''')
    text = f"reward_funcs:\n  - accuracy\n  - func: {tmp_path / 'factory.py'}:make\n    kwargs: {{threshold: 1}}\n"
    cfg = config_from_yaml(text)
    assert cfg.reward_funcs[1] == {"func": f"{tmp_path / 'factory.py'}:make", "kwargs": {"threshold": 1}}
    assert not marker.exists()  # validating a preset runs none of its code
    funcs = build_reward_funcs(cfg.reward_funcs)
    assert marker.exists() and [f.name for f in funcs] == ["accuracy", "over"]
    assert score(funcs[1:], None, ["p", "p"], ["a", "abc"], {}, None, 1).per_func[:, 0].tolist() == [0.0, 1.0]


def test_factory_entries_and_dotted_names_are_checked_without_running_them(client):
    assert check_reward_spec("club_rewards.shaping.progress_reward") is None
    assert "not defined" in check_reward_spec("club_rewards.shaping.missing")
    assert "No module named 'no_such_pkg'" in check_reward_spec("no_such_pkg.rewards.acc")
    assert check_reward_spec({"func": f"{client}:get_scaled_length_reward", "kwargs": {"scale": 1}}) is None
    assert "unknown key" in check_reward_spec({"func": f"{client}:get_scaled_length_reward", "args": [1]})
    with pytest.raises(ValueError, match="reward factory '.*' with kwargs .* failed: TypeError"):
        build_reward_funcs([{"func": f"{client}:get_scaled_length_reward", "kwargs": {"nope": 1}}])


def test_a_function_without_kwargs_is_told_the_contract(client):
    message = check_reward_spec(f"{client}:no_kwargs")
    assert "takes no **kwargs" in message and "trainer_state, log_extra, log_metric" in message


@pytest.mark.slow
def test_a_resumed_run_keeps_trainer_state_log_history(tmp_path):
    import shutil

    from engine.run.control import Control
    from engine.training.trainer import Trainer

    plugin = write(tmp_path / "history.py", '''
def history(completions, trainer_state, log_metric, **kwargs):
    log_metric("seen/history_len", len(trainer_state.log_history))
    log_metric("seen/last_step", trainer_state.log_history[-1]["step"] if trainer_state.log_history else 0)
    return [0.0] * len(completions)
''')
    cfg = tiny_config(tmp_path, "max_steps=4", "save_steps=2", "log_completions_groups=0",
                      f"reward_funcs=[accuracy, '{plugin}:history']")
    trainer, _ = train(cfg, evaluate=False)
    shutil.rmtree(trainer.run_dir / "checkpoints" / "step-000004")  # resume from step 2
    resumed = Trainer.resume(trainer.run_dir, control=Control(), evaluate=False)
    assert resumed.resume_from.name == "step-000002"
    resumed.run()
    assert resumed.summary.get("error") is None, resumed.summary
    metrics = [m for m in read(trainer.run_dir / "metrics.jsonl") if m.get("step")]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert [m["seen/history_len"] for m in metrics] == [0, 1, 2, 3]
    assert [m["seen/last_step"] for m in metrics] == [0, 1, 2, 3]
