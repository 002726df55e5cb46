"""Reward functions that cannot hurt the run: they run in worker processes, where math-verify's
default timeouts work, and a function that hangs, prints, or ends its interpreter costs only
that batch's rewards, with an event saying so, while the run goes on."""

from __future__ import annotations

import json
import threading

import pytest

from conftest import tiny_config, write
from engine.rewards.isolation import close_workers, isolate
from engine.rewards.scoring import RewardFunction, build_reward_funcs, score

pytestmark = pytest.mark.slow

# Written the way open-r1 writes its accuracy reward: math-verify with its default timeouts,
# which use signal.alarm and so work only in a main thread.
MATH_VERIFY_CLIENT = '''
from math_verify import parse, verify


def accuracy_reward(completions, answer, **kwargs):
    contents = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    rewards = []
    for content, sol in zip(contents, answer):
        gold = parse(str(sol))
        if len(gold) == 0:
            rewards.append(None)
            continue
        rewards.append(float(verify(gold, parse(content))))
    return rewards
'''

MISBEHAVING = '''
import os
import sys
import time


def chatty(completions, trainer_state, **kwargs):
    print(f"scoring {len(completions)} completions at step {trainer_state.global_step}")
    print("a warning on stderr", file=sys.stderr)
    return [1.0] * len(completions)


def sleeper(completions, trainer_state, **kwargs):
    if trainer_state.global_step == 1:
        time.sleep(600)
    return [0.5] * len(completions)


def quitter(completions, trainer_state, **kwargs):
    if trainer_state.global_step == 0:
        os._exit(7)
    return [0.25] * len(completions)
'''


def run_on_a_background_thread(cfg):
    """As the dashboard runs a trainer: on a thread that is not the main one."""
    from engine.run.control import Control
    from engine.training.trainer import Trainer

    control = Control()
    trainer = Trainer(cfg, control=control)
    thread = trainer.start()
    thread.join(timeout=600)
    assert not thread.is_alive(), "the run did not end"
    assert threading.current_thread() is threading.main_thread()
    return trainer


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reward_means(trainer, name):
    return [m.get(f"rewards/{name}/mean") for m in read(trainer.run_dir / "metrics.jsonl") if m.get("step")]


def events(trainer, kind):
    return [e for e in read(trainer.run_dir / "events.jsonl") if e["kind"] == kind]


def test_math_verify_with_default_timeouts_works_on_a_background_run(tmp_path):
    pytest.importorskip("math_verify")
    plugin = write(tmp_path / "open_r1_style.py", MATH_VERIFY_CLIENT)
    cfg = tiny_config(tmp_path, "max_steps=3", "log_completions_groups=0",
                      f"reward_funcs=['{plugin}:accuracy_reward']")
    trainer = run_on_a_background_thread(cfg)
    assert trainer.summary.get("error") is None, trainer.summary
    assert events(trainer, "reward_error") == []
    means = reward_means(trainer, "accuracy_reward")
    assert len(means) == 3 and all(m is not None and 0.0 <= m <= 1.0 for m in means)
    assert "accuracy_reward: worker process" in events(trainer, "reward_mode")[0]["message"]


def test_a_reward_that_hangs_prints_or_exits_costs_only_that_batch(tmp_path, capfd):
    plugin = write(tmp_path / "misbehaving.py", MISBEHAVING)
    cfg = tiny_config(tmp_path, "max_steps=4", "log_completions_groups=0", "reward_timeout=5",
                      f"reward_funcs=[accuracy, '{plugin}:chatty', '{plugin}:sleeper', '{plugin}:quitter']")
    trainer = run_on_a_background_thread(cfg)
    assert trainer.summary.get("error") is None and trainer.summary["steps"] == 4, trainer.summary

    assert reward_means(trainer, "sleeper") == [0.5, None, 0.5, 0.5]  # step 2 (global_step 1) timed out
    assert reward_means(trainer, "quitter") == [None, 0.25, 0.25, 0.25]  # os._exit on step 1
    assert reward_means(trainer, "chatty") == [1.0] * 4
    errors = {(e["step"], e["data"]["function"]): e["message"] for e in events(trainer, "reward_error")}
    assert set(errors) == {(1, "quitter"), (2, "sleeper")}
    assert "ended (exit code 7)" in errors[1, "quitter"]
    assert "no result within reward_timeout (5 s)" in errors[2, "sleeper"] and "replaced" in errors[2, "sleeper"]

    printed = [e for e in events(trainer, "reward_output") if e["data"]["function"] == "chatty"]
    assert [e["step"] for e in printed] == [1, 2, 3, 4]
    assert "scoring 64 completions at step 0" in printed[0]["message"] and "a warning on stderr" in printed[0]["message"]
    out, err = capfd.readouterr()
    assert "scoring 64 completions" not in out + err  # nothing reached the terminal


def test_what_cannot_go_to_a_worker_runs_in_process_and_says_so(tmp_path):
    plugin = write(tmp_path / "misbehaving.py", MISBEHAVING)
    funcs = build_reward_funcs(["format", f"{plugin}:chatty", lambda completions, **kw: [0.0] * len(completions)])
    try:
        lines = isolate(funcs, timeout=60)
        assert lines[0] == "format: in-process (built in)"
        assert lines[1] == "chatty: worker process (reward_timeout 60 s)"
        assert lines[2].startswith("<lambda>: in-process (cannot be sent to another process")
        batch = score(funcs, None, ["p"], ["c"], {}, [[1]], 1)
        assert batch.errors == [] and batch.per_func[0].tolist()[1:] == [1.0, 0.0]
        assert batch.output[0][0] == "chatty" and "scoring 1 completions" in batch.output[0][1]
    finally:
        close_workers(funcs)


def test_a_worker_that_cannot_load_the_function_falls_back_to_in_process(tmp_path):
    plugin = write(tmp_path / "only_here.py", '''
import os
if os.environ.get("ONLY_IN_THE_TRAINER") != "1":
    raise ImportError("needs the trainer's environment")
def scorer(completions, **kwargs):
    return [2.0] * len(completions)
''')
    import os

    os.environ["ONLY_IN_THE_TRAINER"] = "1"
    try:
        funcs = build_reward_funcs([f"{plugin}:scorer"])
        os.environ["ONLY_IN_THE_TRAINER"] = "0"  # what the worker process sees
        isolate(funcs, timeout=60)
        batch = score(funcs, None, ["p"], ["c"], {}, None, 1)
        assert batch.per_func[0].tolist() == [2.0] and batch.errors == []
        assert "could not be loaded in a worker process" in batch.notes[0][1] and funcs[0].worker is None
    finally:
        os.environ.pop("ONLY_IN_THE_TRAINER", None)
        close_workers(funcs)


def test_independent_functions_run_in_parallel(tmp_path):
    # Each waits for the other's file: they finish only if both run at once.
    plugin = write(tmp_path / "pair.py", f'''
import os, time
def _meet(me, other):
    open(os.path.join({str(tmp_path)!r}, me), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join({str(tmp_path)!r}, other)):
        if time.monotonic() > deadline:
            raise TimeoutError("ran alone")
        time.sleep(0.01)
def left(completions, **kwargs):
    _meet("left", "right")
    return [1.0] * len(completions)
def right(completions, **kwargs):
    _meet("right", "left")
    return [1.0] * len(completions)
''')
    funcs = build_reward_funcs([f"{plugin}:left", f"{plugin}:right"])
    try:
        isolate(funcs, timeout=120)
        batch = score(funcs, None, ["p"], ["c"], {}, None, 1)
        assert batch.errors == [] and batch.per_func[0].tolist() == [1.0, 1.0]
    finally:
        close_workers(funcs)


def test_an_in_process_function_still_gets_the_contract():
    seen = []
    funcs = [RewardFunction("seen", lambda trainer_state, **kw: seen.append(trainer_state.max_steps) or [1.0])]
    isolate(funcs, timeout=60)
    score(funcs, None, ["p"], ["c"], {}, None, 1)
    assert seen == [0] and funcs[0].worker is None


def test_reloading_a_fixed_plugin_gives_it_a_fresh_worker(tmp_path):
    from engine.rewards.scoring import reload_reward_funcs

    path = write(tmp_path / "fixme.py", "def f(completions, **kwargs):\n    return [1 / 0]\n")
    funcs = build_reward_funcs([f"{path}:f"])
    new = []
    try:
        isolate(funcs, timeout=60)
        assert "ZeroDivisionError" in score(funcs, None, ["p"], ["c"], {}, None, 1).errors[0][1]
        path.write_text("def f(completions, **kwargs):\n    return [3.0]  # fixed\n")
        new, _ = reload_reward_funcs(funcs)
        assert new[0].worker is not None and funcs[0].worker is not new[0].worker
        assert score(new, None, ["p"], ["c"], {}, None, 2).per_func[0].tolist() == [3.0]
    finally:
        close_workers(funcs)
        close_workers(new)


def test_a_stop_does_not_wait_for_a_hung_reward_function(tmp_path):
    from engine.run.control import Control
    from engine.training.trainer import Trainer
    from conftest import wait_until

    started = tmp_path / "started"
    plugin = write(tmp_path / "hangs.py", f'''
import time
def hangs(completions, trainer_state, **kwargs):
    if trainer_state.global_step == 1:
        open({str(started)!r}, "w").close()
        time.sleep(3600)
    return [0.5] * len(completions)
''')
    cfg = tiny_config(tmp_path, "max_steps=50", "log_completions_groups=0", f"reward_funcs=['{plugin}:hangs']")
    control = Control()
    trainer = Trainer(cfg, control=control)  # reward_timeout stays at its default (300 s)
    thread = trainer.start()
    wait_until(started.exists, what="the reward function to hang")
    control.stop()
    thread.join(timeout=200)  # well under reward_timeout
    assert not thread.is_alive()
    assert trainer.summary.get("error") is None and trainer.summary["steps"] == 2, trainer.summary
    errors = events(trainer, "reward_error")
    assert len(errors) == 1 and "the run is stopping" in errors[0]["message"]
