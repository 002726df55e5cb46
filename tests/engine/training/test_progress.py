"""Step progress: every phase of a step says how far it has got while it runs, in-process and
through progress.json, at most a few times a second."""

from __future__ import annotations

import doctest

import pytest

import engine.run.progress as progress_module
from conftest import tiny_config, train
from engine.run.progress import PHASES, Progress, read_progress
from engine.training.progress import MIN_INTERVAL_S, StepProgress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reporter(clock, total_steps=10, pending=()):
    sent: list[Progress] = []
    return StepProgress(sent.append, lambda: list(pending), lambda: total_steps, clock=clock), sent


def test_worked_examples_in_progress_module():
    failed, tried = doctest.testmod(progress_module, verbose=False)
    assert tried >= 4 and failed == 0


def test_first_step_reports_every_phase_and_estimates_the_eta_from_phase_rates():
    clock = FakeClock()
    progress, sent = _reporter(clock, total_steps=10)
    progress.start_step(1)
    progress.start("generate", total=100, unit="tokens")
    clock.now += 30
    progress.generation(25, 100, 25 * 16, 3, 16)  # a quarter of the positions in 30 s
    assert [e.phase for e in sent] == ["generate", "generate"]
    last = sent[-1]
    assert last.fraction == 0.25
    assert "3/16 finished" in last.detail and "tok/s" in last.detail
    # generation projected at 120 s a step, 10 steps: 1200 s less the 30 s spent
    assert last.eta_s == 1170.0
    progress.start("score", total=2, unit="reward functions")  # a new phase is sent at once on a slow run
    assert sent[-1].phase == "score" and sent[-1].step == 1


def test_progress_within_a_phase_is_throttled():
    clock = FakeClock()
    progress, sent = _reporter(clock)
    progress.start_step(1)
    progress.start("update", total=100, unit="micro-batches")
    for i in range(100):  # one second of calls, every 10 ms
        clock.now += 0.01
        progress.advance(i)
    assert 1 / MIN_INTERVAL_S <= len(sent) <= 1 + 1 / MIN_INTERVAL_S


def test_fast_steps_skip_phase_events_and_carry_no_eta_once_a_step_is_timed():
    clock = FakeClock()
    progress, sent = _reporter(clock, pending=("pause",))
    progress.start_step(1)
    progress.start("generate")
    clock.now += 0.05
    progress.end_step()  # a 50 ms step: the run is fast
    progress.start_step(2)
    progress.start("generate")
    progress.start("score")
    assert len(sent) == 1
    clock.now += 1.0
    progress.advance(1)
    assert sent[-1].step == 2 and sent[-1].phase == "score"
    assert sent[-1].eta_s is None  # step times give the ETA now
    assert sent[-1].pending == ["pause"]


@pytest.mark.slow
def test_a_run_reports_each_phase_and_leaves_progress_json(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=2", "beta=0.04")
    trainer, events = train(cfg)
    progress = [e for e in events if isinstance(e, Progress)]
    first = {e.phase for e in progress if e.step == 1}
    assert {"generate", "score", "reference", "update"} <= first, first
    assert all(e.step_started <= e.phase_started <= e.time for e in progress)
    record = read_progress(trainer.run_dir)
    assert record is not None and record["step"] in (1, 2) and record["phase"] in PHASES
    # progress is a gauge: nothing of it goes to events.jsonl
    assert "progress" not in (trainer.run_dir / "events.jsonl").read_text()


@pytest.mark.slow
def test_generation_reports_positions_and_finished_rows():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conftest import TINY_MODEL
    from engine.rollout.backend import SamplingParams, TransformersRollout

    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    backend = TransformersRollout(model, tok.pad_token_id, [tok.eos_token_id])
    calls = []
    rollout = backend.generate([tok("1+1=")["input_ids"]], 4, SamplingParams(max_new_tokens=12),
                               torch.Generator().manual_seed(0), progress=lambda *a: calls.append(a))
    assert calls, "no progress during generation"
    positions = [c[0] for c in calls]
    assert positions == sorted(positions) and all(c[1] == 12 and c[4] == 4 for c in calls)
    assert all(0 <= c[3] <= 4 for c in calls)
    assert calls[-1][2] <= int(rollout.lengths.sum())  # tokens sampled so far never exceed the total


@pytest.mark.slow
def test_the_slow_preset_first_step_reports_every_phase_as_it_goes(tmp_path):
    """A step of the slow preset takes seconds: progress must come during it, not after."""
    from engine.config.presets import load_preset

    cfg = load_preset("slow-llama-25m", [f"output_dir={tmp_path / 'run'}", "max_steps=1", "save_steps=0"])
    _, events = train(cfg, evaluate=False)
    progress = [e for e in events if isinstance(e, Progress) and e.step == 1]
    by_phase = {phase: [e for e in progress if e.phase == phase] for phase in ("generate", "score", "update")}
    assert all(by_phase.values()), {k: len(v) for k, v in by_phase.items()}
    generating = by_phase["generate"]
    assert len(generating) >= 3, "generation went by without progress"
    assert generating[-1].done > generating[0].done and "tok/s" in generating[-1].detail
    assert all(e.eta_s is not None for e in generating[1:]), "no ETA before the first step ended"
