"""The bundled agent example learns: tiny-calculator-agent raises its reward and the share of
episodes that call the calculator with the problem's operands, on CPU, in under a minute."""

from __future__ import annotations

import json

import pytest

from conftest import train
from engine.config.presets import load_preset


@pytest.mark.slow
def test_the_calculator_agent_learns_to_use_its_tool(tmp_path):
    cfg = load_preset("tiny-calculator-agent", ["max_steps=30", "eval_steps=0", "save_steps=0",
                                                f"output_dir={tmp_path / 'run'}"])
    trainer, _ = train(cfg)
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "reward" in r]
    assert len(rows) == 30

    def tenth(key: str, last: bool) -> float:
        part = rows[-3:] if last else rows[:3]
        return sum(r[key] for r in part) / len(part)

    for key in ("reward", "rewards/CalculatorEnv/mean", "tools/call_frequency", "rewards/accuracy/mean"):
        assert tenth(key, last=True) > tenth(key, last=False) + 0.1, key
