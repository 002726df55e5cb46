"""The metrics of TRL's other loss types and loss options reach the dashboard's charts."""

from __future__ import annotations

from grpo_tui.model.run_model import RunModel
from grpo_tui.screens.compare import METRICS
from grpo_tui.screens.dashboard import OVERVIEW


def test_cispo_clip_ratio_shows_on_the_clip_ratio_chart():
    model = RunModel()
    for step in (1, 2):
        model.add_metrics({"step": step, "cispo_clip_ratio": 0.1 * step, "entropy_coef": 0.01,
                           "vespo/phi_seq_mean": 0.9, "aux_loss": 2.0})
    (clip_chart,) = [spec for spec in OVERVIEW if spec.title == "clip ratio"]
    assert clip_chart.expand(model) == [("cispo_clip_ratio", "cispo")]
    # every one is a series the metric picker offers for any chart
    assert {"cispo_clip_ratio", "entropy_coef", "vespo/phi_seq_mean", "aux_loss"} <= set(model.series)
    assert "entropy_coef" in dict(METRICS)
