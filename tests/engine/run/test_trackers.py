"""report_to through accelerate's trackers: HF's train/ and eval/ names, W&B resuming its run."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker

from engine.config.schema import RunConfig
from engine.run import reporting
from engine.run.events import EvalResult, RunFinished, RunStarted, StepMetrics, StepSamples
from engine.run.reporting import INTEGRATIONS, check_report_to, make_reporters
from engine.run.trackers import STATE_FILE, TrackerReporter, hf_names
from tests.conftest import tiny_config, train

GROUPS = [{"prompt": "1+1=", "completions": [{"text": "2", "rewards": {"accuracy": 1.0}, "advantage": 0.0}]}]


class Recorder(GeneralTracker):
    """A stand-in tracker: keeps what it is given."""

    name = "recorder"
    requires_logging_directory = True
    made: list["Recorder"] = []

    def __init__(self, run_name, logging_dir=None, **kwargs):
        super().__init__()
        self.args = (run_name, logging_dir, kwargs)
        self.config, self.logged, self.finished = None, [], False
        Recorder.made.append(self)

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        self.config = values

    def log(self, values, step=None, **kwargs):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished = True


@pytest.fixture
def recorder_as_tensorboard(monkeypatch):
    """report_to: [tensorboard] lands in a Recorder (tensorboard need not be installed)."""
    Recorder.made = []
    monkeypatch.setitem(LOGGER_TYPE_TO_CLASS, "tensorboard", Recorder)
    monkeypatch.setitem(reporting.PACKAGES, "tensorboard", ("json",))
    return Recorder.made


def finish(reporter, *events):
    for event in events:
        reporter(event)
    reporter(RunFinished(summary={}))
    reporter.close(timeout=30)


def test_report_to_accepts_every_tracker_accelerate_has():
    assert set(INTEGRATIONS) >= set(LOGGER_TYPE_TO_CLASS) - {Recorder.name}
    assert check_report_to(list(INTEGRATIONS), check_installed=False) == []


def test_hf_names_put_training_under_train_and_keep_eval():
    assert hf_names({"reward": 0.5, "rewards/accuracy/mean": 1, "eval/accuracy": 0.25, "eval_loss": 2.0,
                     "kl": math.nan, "note": "x", "flag": True}) == {
        "train/reward": 0.5, "train/rewards/accuracy/mean": 1.0, "eval/accuracy": 0.25, "eval/loss": 2.0}


def test_reporter_feeds_the_tracker_config_steps_and_evaluations(recorder_as_tensorboard, tmp_path):
    (reporter,) = make_reporters(RunConfig(report_to=["tensorboard"]), tmp_path)
    finish(
        reporter,
        RunStarted(run_dir=str(tmp_path), config={"learning_rate": 1e-5, "dataset": {"task": "arithmetic"},
                                                  "reward_funcs": ["accuracy"]}, total_steps=2, model="m", device="cpu"),
        EvalResult(step=0, metrics={"eval/accuracy": 0.25}),
        StepMetrics(step=1, metrics={"reward": 0.5, "kl": math.nan}),
        StepMetrics(step=2, metrics={"reward": 0.75, "eval/accuracy": 0.5}),
        EvalResult(step=2, metrics={"eval/accuracy": 0.5}),
    )
    assert reporter.error is None
    (tracker,) = recorder_as_tensorboard
    assert tracker.args[:2] == ("tensorboard", str(tmp_path))  # event files in <run dir>/tensorboard
    assert tracker.config == {"learning_rate": 1e-5, "dataset.task": "arithmetic", "reward_funcs": "['accuracy']"}
    assert tracker.logged == [(0, {"eval/accuracy": 0.25}), (1, {"train/reward": 0.5}), (2, {"train/reward": 0.75}),
                              (2, {"eval/accuracy": 0.5})]
    assert tracker.finished


@pytest.mark.slow
def test_a_run_logs_train_and_eval_names(recorder_as_tensorboard, tmp_path):
    trainer, _ = train(tiny_config(tmp_path, "max_steps=3", "report_to=[tensorboard]"))
    (tracker,) = recorder_as_tensorboard
    keys = {key for _, values in tracker.logged for key in values}
    assert {"train/reward", "eval/accuracy"} <= keys
    assert all(key.startswith(("train/", "eval/")) for key in keys), keys
    assert max(step for step, _ in tracker.logged) == 3 and tracker.finished


# ----------------------------------------------------------------- W&B (a stand-in module: no network)


@pytest.fixture
def fake_wandb(monkeypatch):
    calls: list = []

    class Run:
        def log(self, data, step=None, **kwargs):
            calls.append(("log", step, data))

        def finish(self):
            calls.append(("finish",))

    class Table:
        def __init__(self, columns=None, data=None, dataframe=None):
            self.columns, self.data = columns, data

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs)) or Run()
    fake.config = types.SimpleNamespace(update=lambda values, **kw: calls.append(("config", values)))
    fake.Table = Table
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    return calls


def _wandb_run(run_dir, **cfg):
    reporters = make_reporters(RunConfig(report_to=["wandb"], **cfg), run_dir)
    (reporter,) = [r for r in reporters if isinstance(r, TrackerReporter)]
    finish(reporter, RunStarted(run_dir=str(run_dir), config={"beta": 0.0}, total_steps=1, model="m", device="cpu"),
           StepMetrics(step=1, metrics={"reward": 0.5}), StepSamples(step=1, groups=GROUPS))
    for r in reporters:
        r.close(timeout=30)
    assert reporter.error is None


def test_wandb_logs_hf_names_and_a_completions_table(fake_wandb, tmp_path):
    _wandb_run(tmp_path, log_completions=True, run_name="nb")
    init = fake_wandb[0][1]
    assert fake_wandb[0][0] == "init" and init["project"] == "grpo-tui" and init["name"] == "nb"
    assert init["dir"] == str(tmp_path) and init["resume"] == "allow"
    assert ("config", {"beta": 0.0}) in fake_wandb
    assert ("log", 1, {"train/reward": 0.5, "train/global_step": 1}) in fake_wandb
    table = next(call[2]["completions"] for call in fake_wandb if call[0] == "log" and "completions" in call[2])
    assert table.columns[:3] == ["step", "prompt", "completion"] and len(table.data) == 1
    assert fake_wandb[-1] == ("finish",)


def test_wandb_resumes_the_same_run_and_honours_wandb_dir(fake_wandb, tmp_path, monkeypatch):
    _wandb_run(tmp_path)
    first = fake_wandb[0][1]["id"]
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {"wandb": {"id": first}}
    fake_wandb.clear()
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    _wandb_run(tmp_path)  # a resume of the same run directory
    again = fake_wandb[0][1]
    assert again["id"] == first and again["resume"] == "allow"
    assert "dir" not in again  # W&B reads WANDB_DIR itself


@pytest.mark.slow
def test_tensorboard_event_file_of_a_run_holds_train_and_eval_names(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _ = train(tiny_config(tmp_path, "max_steps=3", "report_to=[tensorboard]"))
    events = EventAccumulator(str(trainer.run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/reward", "eval/accuracy"} <= tags
    assert all(tag.startswith(("train/", "eval/")) for tag in tags), tags
    assert [e.step for e in events.Scalars("train/reward")] == [1, 2, 3]
