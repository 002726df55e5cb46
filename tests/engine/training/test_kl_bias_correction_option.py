"""``use_bias_correction_kl`` reaches the loss a run trains with: same seed, same first step
(the policy is the reference, so k3 and its gradient are 0 either way), different gradients once
the policy has moved."""

from __future__ import annotations

import json

from conftest import tiny_config, train


def _grad_norms(tmp_path, name: str, correct: bool) -> list[float]:
    cfg = tiny_config(tmp_path / name, "max_steps=2", "beta=1.0", "learning_rate=1e-3",
                      f"use_bias_correction_kl={str(correct).lower()}")
    trainer, _ = train(cfg, evaluate=False)
    assert "error" not in trainer.summary, trainer.summary
    lines = (tmp_path / name / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["grad_norm"] for line in lines]


def test_the_option_changes_the_gradient_once_the_policy_has_left_the_reference(tmp_path):
    on, off = _grad_norms(tmp_path, "on", True), _grad_norms(tmp_path, "off", False)
    assert on[0] == off[0]
    assert on[1] != off[1]
