"""The dashboard's pure parts: the run model, downsampling, the samples index, YAML
highlighting and problem location in the preset editor."""

from __future__ import annotations

import json
import math
from pathlib import Path

from grpo_tui.widgets.charts.downsample import downsample
from grpo_tui.model.run_model import RunModel
from engine.run.listing import summarize_run
from grpo_tui.model.sample_index import SampleIndex
from grpo_tui.screens.editor import locate
from grpo_tui.widgets.yaml_area import yaml_highlights

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"


def test_recorded_run_reads_into_model() -> None:
    model = RunModel.from_run_dir(RECORDED)
    assert model.state == "finished"
    assert model.read_only
    assert model.step == 12 and model.total_steps == 12
    assert len(model.series["reward"]) == 12
    assert list(model.series["eval/accuracy"].steps) == [0, 6, 12]
    assert [(m.step, m.kind) for m in model.markers] == [(4, "adjust"), (8, "checkpoint")]
    assert model.config["learning_rate"] == 1e-4  # the adjustment is applied to the shown config
    assert model.latest_samples()["step"] == 12
    assert model.summary["eval_accuracy_after"] is not None
    assert model.elapsed(now=1e12) is not None and model.elapsed(now=1e12) < 3600  # from the files, not the clock


def test_live_model_elapsed_uses_the_clock_until_the_end() -> None:
    model = RunModel()
    model.set_run_info(run_dir="runs/x", config={"max_steps": 10}, time=100.0)
    model.add_metrics({"step": 1, "time": 101.0, "reward": 0.5, "step_time": 1.0, "eta_s": 9.0})
    assert model.elapsed(now=105.0) == 5.0
    assert model.eta() == 9.0
    model.add_event({"kind": "status", "level": "info", "message": "finished", "time": 110.0, "data": {"state": "finished"}})
    assert model.is_terminal and model.elapsed(now=500.0) == 10.0 and model.eta() is None


def test_series_repeated_step_replaces_and_ema_smooths() -> None:
    model = RunModel()
    for step, value in [(1, 0.0), (2, 1.0), (2, 2.0), (3, float("nan"))]:
        model.add_metrics({"step": step, "reward": value})
    s = model.series["reward"]
    assert list(s.steps) == [1, 2, 3] and list(s.values[:2]) == [0.0, 2.0]
    assert 0.0 < s.ema[1] < 2.0 and s.ema[2] == s.ema[1]  # NaN does not poison the EMA


def test_downsample_caps_points_and_drops_non_finite() -> None:
    xs = list(range(10_000))
    ys = [1.0] * 10_000
    ys[5] = math.nan
    dx, dy = downsample(xs, ys, 80)
    assert len(dx) <= 4 * 80 and all(v == 1.0 for v in dy)
    assert downsample([1, 2], [3.0, 4.0], 80) == ([1, 2], [3.0, 4.0])


def test_sample_index_reads_appended_steps_and_ignores_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"step": 1, "groups": []}) + "\n" + '{"step": 2, "gro')
    index = SampleIndex(path)
    assert index.refresh() and index.steps == [1]
    with open(path, "a") as f:
        f.write('ups": [{"prompt": "1+1="}]}\n')
    assert index.refresh() and index.steps == [1, 2]
    assert index.load(2)["groups"][0]["prompt"] == "1+1="
    assert index.load(7) is None


def test_run_summary_for_the_launcher() -> None:
    summary = summarize_run(RECORDED)
    assert (summary.state, summary.step, summary.max_steps) == ("finished", 12, 12)
    assert summary.eval_accuracy is not None


def test_editor_locates_problems_on_their_line() -> None:
    text = "model_name_or_path: x\ndataset:\n  task: arithmetic\n  task_args: {digits: 2}\nlearnin_rate: 1\n"
    assert locate(text, "learnin_rate: unknown key (did you mean 'learning_rate'?)") == 4
    assert locate(text, "dataset.task: unknown task") == 2
    assert locate(text, "dataset.task_args.digits: bad") == 3
    assert locate(text, "yaml: line 3, column 1: invalid YAML: x") == 2
    assert locate(text, "num_generations: must be >= 2") is None


def test_yaml_highlighting_spans() -> None:
    spans = yaml_highlights('learning_rate: 5.0e-5  # "lr"')
    names = {name for _, _, name in spans}
    assert names == {"yaml.field", "number", "comment"}


def write_live_heartbeat(run_dir: Path) -> None:
    """A heartbeat naming this process, as the process training a run writes it."""
    import json
    import os
    import socket
    import time

    from engine.run.channel import process_started

    (run_dir / "heartbeat.json").write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "started": process_started(os.getpid()),
        "time": time.time(), "interval": 2.0, "state": "running"}))


def test_follower_keeps_a_growing_run_directory_current(tmp_path: Path) -> None:
    from grpo_tui.model.follow import open_run_dir

    (tmp_path / "config.yaml").write_text((RECORDED / "config.yaml").read_text())
    metrics = (RECORDED / "metrics.jsonl").read_text().splitlines(keepends=True)
    events = (RECORDED / "events.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "metrics.jsonl").write_text("".join(metrics[:5]) + metrics[5][:20])  # a torn last line
    (tmp_path / "events.jsonl").write_text("".join(events[:4]))
    write_live_heartbeat(tmp_path)  # the process writing it is this one: alive
    model, follower = open_run_dir(tmp_path)
    assert model.step == 4 and model.state == "running" and model.total_steps == 12
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(metrics[5][20:] + "".join(metrics[6:]))
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write("".join(events[4:]))
    assert follower.poll()
    assert model.step == 12 and model.state == "finished"
    assert len(model.series["reward"]) == 12
    assert not follower.poll()


def test_adjust_form_parses_yaml_and_maps_engine_problems_to_fields() -> None:
    from engine.config.presets import load_preset
    from grpo_tui.screens.adjust import parse_changes, validate

    cfg = load_preset(str(Path(__file__).resolve().parents[1] / "data" / "presets" / "tiny-arithmetic.yaml"))
    current = {"learning_rate": 5e-5, "temperature": 1.0, "reward_weights": None}
    changes, errors = parse_changes(current, {"learning_rate": "2e-4", "temperature": "1.0", "reward_weights": "null"})
    assert changes == {"learning_rate": 2e-4} and not errors
    coerced, errors = validate(cfg, {"temperature": -1, "reward_weights": [1.0, 2.0]})
    assert coerced is None and set(errors) == {"temperature", "reward_weights"}
    coerced, errors = validate(cfg, {"learning_rate": "5e-5"})
    assert coerced == {"learning_rate": 5e-5} and not errors


def test_a_dashboard_attached_from_another_process_shows_model_and_device(short_run):
    """The run's first event carries what the status line shows: the model and where it trains."""
    trainer, _ = short_run
    attached = RunModel.from_run_dir(trainer.run_dir)
    assert attached.device == str(trainer.device)
    assert attached.model_name == "tiny-model" and attached.total_steps == trainer.cfg.max_steps
