"""Logging integrations as Control subscribers: report_to's validation, TRL-style completion parquet
files (the trackers themselves: test_trackers.py)."""

from __future__ import annotations

import sys

import pytest

from engine.config.schema import ConfigError, RunConfig
from engine.config.checks import config_from_dict
from engine.run.control import Control
from engine.run.events import RunFinished, StepMetrics, StepSamples
from engine.run.reporting import (
    CompletionLogReporter,
    ReportingError,
    check_report_to,
    completion_rows,
    completions_path,
    make_reporters,
    take_errors,
)

GROUPS = [
    {
        "prompt": "12+34=",
        "answer": "46",
        "completions": [
            {"text": "46", "reward": 1.5, "rewards": {"accuracy": 1.0, "format": 0.5}, "advantage": 0.7},
            {"text": "47", "reward": 0.0, "rewards": {"accuracy": 0.0, "format": None}, "advantage": -0.7},
        ],
    },
    {
        "prompt": "1+1=",
        "completions": [{"text": "2", "reward": 1.0, "rewards": {"accuracy": 1.0, "format": 0.0}, "advantage": 0.0}],
    },
]


@pytest.fixture
def no_wandb(monkeypatch):
    """Make ``import wandb`` fail whether or not it is installed here."""
    monkeypatch.setitem(sys.modules, "wandb", None)


def finish(reporter, *events):
    for event in events:
        reporter(event)
    reporter(RunFinished(summary={}))
    reporter.close(timeout=30)


# ----------------------------------------------------------------- report_to validation


def test_check_report_to_names_and_missing_packages(no_wandb):
    assert check_report_to([]) == []
    problems = check_report_to(["tensorbord", "wandb"])
    assert problems[0] == (
        "report_to[0]: unknown integration 'tensorbord' (did you mean 'tensorboard'?); choose from "
        "tensorboard, wandb, trackio, mlflow, comet_ml, aim, clearml, dvclive, swanlab"
    )
    assert problems[1] == "report_to[1]: wandb is not installed; run `pip install wandb`"
    assert check_report_to(["wandb"], check_installed=False) == []


def test_config_fields_and_trl_spellings(no_wandb):
    assert RunConfig().report_to == [] and RunConfig().log_completions is False
    assert config_from_dict({"report_to": "none"}).report_to == []
    assert config_from_dict({"report_to": None}).report_to == []
    assert config_from_dict({"report_to": ["tensorboard"], "log_completions": True}, check_paths=False).log_completions
    with pytest.raises(ConfigError) as err:
        config_from_dict({"report_to": ["wandb"], "log_completions": "yes"})
    text = str(err.value)
    assert "pip install wandb" in text
    assert "log_completions: expected true or false" in text


def test_make_reporters_missing_package_is_one_line(no_wandb, tmp_path):
    cfg = RunConfig(report_to=["wandb"])
    with pytest.raises(ReportingError) as err:
        make_reporters(cfg, tmp_path)
    assert str(err.value) == "report_to[0]: wandb is not installed; run `pip install wandb`"
    assert make_reporters(RunConfig(), tmp_path) == []


# ----------------------------------------------------------------- completion logs


def test_completion_rows_have_trl_columns():
    rows = completion_rows(3, GROUPS)
    assert list(rows[0]) == ["step", "prompt", "completion", "accuracy", "format", "advantage"]
    assert rows[1] == {"step": 3, "prompt": "12+34=", "completion": "47", "accuracy": 0.0, "format": None,
                       "advantage": -0.7}
    assert len(rows) == 3


def test_completion_log_reporter_writes_parquet_per_step(tmp_path):
    import pyarrow.parquet as pq

    (reporter,) = make_reporters(RunConfig(log_completions=True), tmp_path)
    assert isinstance(reporter, CompletionLogReporter)
    finish(reporter, StepSamples(step=1, groups=GROUPS), StepMetrics(step=1, metrics={"reward": 1.0}),
           StepSamples(step=12, groups=GROUPS[:1]))
    assert reporter.error is None
    assert completions_path(tmp_path, 12).name == "completions_00012.parquet"
    table = pq.read_table(tmp_path / "completions" / "completions_00001.parquet")
    assert table.column_names == ["step", "prompt", "completion", "accuracy", "format", "advantage"]
    assert table.column("completion").to_pylist() == ["46", "47", "2"]
    assert table.column("format").to_pylist() == [0.5, None, 0.0]
    assert table.column("advantage").to_pylist() == [0.7, -0.7, 0.0]
    assert pq.read_table(tmp_path / "completions" / "completions_00012.parquet").num_rows == 2
    assert not list((tmp_path / "completions").glob("*.tmp"))


def test_a_failing_reporter_turns_itself_off_and_reports_once(tmp_path):
    blocker = tmp_path / "run"
    blocker.mkdir()
    (blocker / "completions").write_text("a file where the folder should be")
    control = Control()
    reporter = CompletionLogReporter(blocker)
    control.subscribe(reporter)
    control.publish(StepSamples(step=1, groups=GROUPS))  # must not raise on the engine thread
    control.publish(StepSamples(step=2, groups=GROUPS))
    control.publish(RunFinished(summary={}))
    reporter.close(timeout=30)
    assert reporter.error.startswith("completions logging stopped: ")
    assert take_errors([reporter]) == [reporter.error]
    assert take_errors([reporter]) == []  # reported once
    reporter(StepSamples(step=3, groups=GROUPS))  # disabled: ignored, no exception


def test_completion_logs_need_logged_groups():
    with pytest.raises(ConfigError, match="set log_completions_groups > 0"):
        config_from_dict({"log_completions": True, "log_completions_groups": 0})
