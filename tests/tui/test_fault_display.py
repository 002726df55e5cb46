"""Rewards a reward function failed to give are missing: shown as —, never as 0."""

from __future__ import annotations

import math

from grpo_tui.cli.headless import progress_line
from grpo_tui.model.run_model import RunModel
from grpo_tui.screens.inspector import group_stats
from grpo_tui.screens.reward_bench import render_rows, score_one
from grpo_tui.widgets.samples import render_groups
from grpo_tui.widgets.status import RunStatus

FAILED = {"text": "42", "reward": None, "rewards": {"accuracy": None, "format": None}, "advantage": 0.0,
          "length": 2, "truncated": False}
# written before failed totals were null: the empty sum's 0.0, with every function missing
OLD = {**FAILED, "reward": 0.0}


def test_samples_pane_and_inspector_show_failed_rewards_as_missing():
    record = {"step": 3, "groups": [{"prompt": "1+1=", "answer": "2", "reward_mean": None, "reward_std": 0.0,
                                     "completions": [FAILED, OLD]}]}
    text = render_groups(record, 100).plain
    assert "0.00" not in text.replace("+0.00", "")  # the advantage is a real 0; no reward is
    assert text.count("—") >= 4  # the group's mean and std, and each completion's total
    assert all(math.isnan(x) for x in group_stats(record["groups"][0]))


def test_header_and_progress_line_show_a_missing_reward_as_a_dash():
    model = RunModel()
    model.set_run_info(run_dir="/tmp/run", config={"max_steps": 10})
    model.add_metrics({"step": 1, "reward": 0.5})
    model.add_metrics({"step": 2, "reward": None})  # metrics.jsonl's null: the rewards failed
    status = RunStatus(model, clock=lambda: 0.0)
    line = status.render_text(elapsed=1.0).plain
    assert ("reward —" in line or "R —" in line) and "0.500" not in line  # narrow or wide
    assert "reward —" in progress_line(2, 10, {"reward": float("nan")})


def test_reward_bench_total_is_missing_when_every_function_failed():
    from engine.rewards.scoring import RewardFunction

    def boom(prompts, completions, **kwargs):
        raise ValueError("broken")

    rows, total = score_one([RewardFunction("boom", boom, "boom")], None, "p", "c", {})
    assert total is None and rows[0].error
    table = render_rows(rows, total, None).plain
    assert "total" in table and "—" in table.split("total", 1)[1]


def test_progress_line_of_a_tool_run_shows_calls_per_episode_and_failures():
    line = progress_line(3, 10, {"reward": 0.5, "tools/call_frequency": 1.25, "tools/failure_frequency": 0.1})
    assert "tools 1.25/ep" in line and "fail 10%" in line
    assert "tools" not in progress_line(3, 10, {"reward": 0.5})
