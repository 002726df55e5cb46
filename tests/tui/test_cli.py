"""The command line as a user types it: exit codes, messages, overrides, headless output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def grpo_tui(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grpo_tui", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def test_bad_preset_lists_every_problem_and_exits_2(tmp_path):
    preset = tmp_path / "broken.yaml"
    preset.write_text(
        "model_name_or_path: ./no-such-model\n"
        "learnin_rate: 1e-5\n"
        "num_generations: three\n"
        "per_device_train_batch_size: 10\n"
        "reward_funcs: [accuracy, missing_plugin.py:score]\n"
        "dataset:\n  task: arithmetic\n  task_args: {digits: 2}\n"
    )
    result = grpo_tui("train", str(preset), "--headless")
    assert result.returncode == 2
    err = result.stderr
    assert "Traceback" not in err
    assert "learnin_rate: unknown key (did you mean 'learning_rate'?)" in err
    assert "num_generations" in err and "model_name_or_path" in err and "missing_plugin.py" in err
    assert "problems" in err
    assert result.stdout == ""


def test_batch_not_divisible_by_group_size():
    result = grpo_tui("train", "tiny-arithmetic", "--headless", "--set", "num_generations=6")
    assert result.returncode == 2
    assert "per_device_train_batch_size" in result.stderr and "num_generations" in result.stderr


def test_unknown_preset_and_bad_override():
    result = grpo_tui("train", "no-such-preset", "--headless")
    assert result.returncode == 2 and "tiny-arithmetic" in result.stderr  # lists what exists
    result = grpo_tui("train", "tiny-arithmetic", "--headless", "--set", "temprature=0.7")
    assert result.returncode == 2 and "did you mean 'temperature'" in result.stderr


def test_headless_train_with_overrides(tmp_path):
    out = tmp_path / "run"
    result = grpo_tui("train", "tiny-arithmetic", "--headless", "--set", "learning_rate=5e-5",
                      "--set", "num_generations=4", "--set", "dataset.task_args.eval_size=32",
                      "--max-steps", "3", "--output", str(out))
    assert result.returncode == 0, result.stderr
    stdout = result.stdout
    assert "step 3/3" in stdout and "reward" in stdout and "ETA" in stdout
    assert "held-out greedy accuracy" in stdout and "→" in stdout
    assert str(out / "final") in stdout
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2, 3]
    assert metrics[1]["learning_rate"] == 5e-5
    config = (out / "config.yaml").read_text()
    assert "num_generations: 4" in config


def test_presets_command_lists_bundled_presets():
    result = grpo_tui("presets")
    assert result.returncode == 0
    for name in ("tiny-arithmetic", "qwen2.5-0.5b-gsm8k", "qwen2.5-1.5b-countdown", "r1-reasoning"):
        assert name in result.stdout


def test_output_directory_with_a_run_is_refused(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    result = grpo_tui("train", "tiny-arithmetic", "--headless", "--output", str(tmp_path))
    assert result.returncode == 2 and "already holds a run" in result.stderr


def test_version_help_and_a_missing_run_directory():
    """--version prints the installed version; every argument has help; `view` of a folder
    that is not a run is one line and exit 2 (it opened an empty launcher)."""
    from importlib.metadata import version

    from grpo_tui.cli.main import build_parser

    out = grpo_tui("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"grpo-tui {version('grpo-tui')}"
    out = grpo_tui("view", "/nonexistent/run")
    assert out.returncode == 2 and out.stderr.strip() == "grpo-tui: /nonexistent/run is not a run directory (no config.yaml)"
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    undocumented = [f"{name} {action.dest}" for name, sub in commands.items() for action in sub._actions
                    if action.help is None]
    assert undocumented == []
    assert "--max-steps" not in commands["bench"].format_help()  # bench counts its own --steps


def test_shell_completion_scripts():
    """--print-completion bash|zsh prints a script completing the subcommands, run directories as
    folders and presets as files."""
    bash = grpo_tui("--print-completion", "bash")
    assert bash.returncode == 0 and "resume" in bash.stdout and "_shtab_compgen_dirs" in bash.stdout
    zsh = grpo_tui("--print-completion", "zsh")
    assert zsh.returncode == 0 and "_files -/" in zsh.stdout and "compare" in zsh.stdout
