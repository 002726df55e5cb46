"""The charts' pure parts: extreme-keeping downsampling, step and value ticks, number
labels, markers built from events, the per-preset metric choices."""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotext._figure as plotext_figure
import pytest

from grpo_tui.model import chart_prefs
from grpo_tui.model.run_model import RunModel
from grpo_tui.widgets.charts.chart import ChartSpec
from grpo_tui.widgets.charts.downsample import downsample, ema, value_at, window
from grpo_tui.widgets.charts.figure import ChartView, build
from grpo_tui.widgets.charts.ticks import format_ticks, format_value, step_ticks, value_ticks


def spiky(n: int = 2000, at: int = 739, factor: float = 30.0) -> tuple[list[int], list[float]]:
    xs = list(range(1, n + 1))
    ys = [0.2 + 0.01 * (i % 7) for i in xs]
    ys[at - 1] = 0.2 * factor
    return xs, ys


def test_a_one_step_spike_survives_downsampling_at_every_width() -> None:
    xs, ys = spiky()
    for width in range(10, 201):
        dx, dy = downsample(xs, ys, width)
        assert len(dx) <= 4 * width
        assert max(dy) >= 6.0 and min(dy) == min(ys), width
        assert dx == sorted(dx) and set(dx) <= set(xs)  # real steps, in order


def test_window_and_value_at_read_the_points_a_zoom_and_cursor_need() -> None:
    xs, ys = [0, 6, 12], [0.41, 0.61, 0.5]
    assert window(xs, ys, 5, 12) == ([6, 12], [0.61, 0.5])
    assert value_at(xs, ys, 8) == (6, 0.61)  # eval is logged every 6 steps: its latest value
    assert value_at(xs, ys, -1) is None
    assert ema([1.0, float("nan"), 3.0], 0.5) == [1.0, 1.0, 2.0]


def test_step_ticks_are_integers_within_the_range() -> None:
    for lo, hi in [(1, 12), (0, 2000), (1, 3), (250, 260), (5, 5)]:
        for count in range(2, 12):
            ticks = step_ticks(lo, hi, count)
            assert ticks and all(isinstance(t, int) and lo <= t <= hi for t in ticks)
            assert len(ticks) <= max(1, count)


def test_value_ticks_enclose_the_data_and_labels_are_short() -> None:
    ticks = value_ticks(0.094, 6.227, 5)
    assert ticks[0] <= 0.094 and ticks[-1] >= 6.227
    assert format_ticks(value_ticks(0.0, 7.5e-5, 4)) == ["0", "2.5e-5", "5e-5", "7.5e-5"]
    assert format_value(7.5e-5) == "7.5e-5" and format_value(0.000075) != "0.0000750"
    assert format_ticks([1.0, 1.25, 1.5]) == ["1.00", "1.25", "1.50"]


def figure_for(model: RunModel, spec: ChartSpec, view: ChartView = ChartView(), size=(60, 16)):
    """The chart drawn as plain text, its header, its y labels and its x labels."""
    fig = plotext_figure._figure_class()
    header = build(fig, spec, model, view, *size)
    fig.plotsize(*size)
    text = re.sub(r"\x1b\[[0-9;]*m", "", fig.build())
    lines = text.splitlines()
    y_labels = [m.group(1) for line in lines if (m := re.match(r"^\s*(\S+)┤", line))]
    return header, text, y_labels, lines[-1].split()


def spike_model() -> RunModel:
    model = RunModel()
    xs, ys = spiky()
    for x, y in zip(xs, ys):
        model.add_metrics({"step": x, "kl": y, "zero": 0.0})
    return model


@pytest.mark.parametrize("width", [20, 40, 80, 200])
def test_the_chart_axis_reaches_the_spike(width: int) -> None:
    header, text, y_labels, x_labels = figure_for(spike_model(), ChartSpec("KL", ("kl",)), size=(width, 12))
    assert max(float(label) for label in y_labels) >= 6.0
    assert x_labels and all(label.isdigit() for label in x_labels)


def test_a_flat_series_sits_mid_chart_with_one_label() -> None:
    header, text, y_labels, _ = figure_for(spike_model(), ChartSpec("zero", ("zero",)))
    assert y_labels == ["0"]
    assert "-1" not in text


def test_identical_series_are_named_in_the_header() -> None:
    model = RunModel()
    for step in range(1, 6):
        model.add_metrics({"step": step, "reward": step / 10, "accuracy": step / 10})
    header, *_ = figure_for(model, ChartSpec("reward", ("reward", "accuracy"), ("total", "accuracy")))
    assert [e.same_as for e in header.entries] == ["", "total"]
    assert header.entries[0].value == "0.5"


def test_cursor_log_and_zoom_change_what_is_read_and_drawn() -> None:
    model = spike_model()
    view = ChartView(cursor=739, log_y=True, zoom=(700, 800), smooth=True, alpha=0.3)
    header, _, y_labels, x_labels = figure_for(model, ChartSpec("KL", ("kl",)), view)
    assert header.flags == ["EMA 0.3", "log"] and header.cursor == 739
    assert 700 <= int(x_labels[0]) and int(x_labels[-1]) <= 800
    assert y_labels[0] in ("10", "1") and y_labels[-1] == "0.1"  # decades
    raw, *_ = figure_for(model, ChartSpec("KL", ("kl",)), ChartView(cursor=739))
    assert raw.entries[0].value == "6"


def test_markers_of_every_kind_with_labels() -> None:
    model = RunModel()
    model.set_run_info(run_dir=None, config={"learning_rate": 5e-5})
    events = [
        (262, "adjust", "", {"learning_rate": 1e-4}),
        (270, "checkpoint", "checkpoint saved", {}),
        (280, "status", "paused at step 280", {"state": "paused"}),
        (280, "status", "running", {"state": "running"}),
        (290, "fault", "paused: reward function failed", {"fault": "reward"}),
        (300, "detach", "handed over at step 300", {}),
    ]
    for step, kind, message, data in events:
        model.add_event({"step": step, "kind": kind, "message": message, "data": data})
    assert [m.kind for m in model.markers] == ["adjust", "checkpoint", "pause", "resume", "fault", "handover"]
    assert model.markers[0].label == "step 262: learning_rate 5e-5 → 0.0001"
    assert model.markers[2].label == "step 280: paused at step 280"


def test_chart_choices_persist_per_preset(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    chart_prefs.save("tiny-arithmetic", "KL", ["kl", "time/generate"])
    chart_prefs.save("other", "KL", ["entropy"])
    assert chart_prefs.load("tiny-arithmetic") == {"KL": ["kl", "time/generate"]}
    chart_prefs.save("tiny-arithmetic", "KL", None)
    assert chart_prefs.load("tiny-arithmetic") == {}
    assert json.loads((tmp_path / "grpo-tui" / "charts.json").read_text())["other"] == {"KL": ["entropy"]}
    assert chart_prefs.preset_key({"run_name": "tiny-arithmetic"}, "runs/x") == "tiny-arithmetic"
    (tmp_path / "grpo-tui" / "charts.json").write_text("{not json")
    assert chart_prefs.load("other") == {}
