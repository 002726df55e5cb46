"""A full disk never kills the run: failed log writes are kept and written once the disk
takes them, failed checkpoints are reported and training goes on, nothing is torn."""

from __future__ import annotations

import errno

import pytest

import engine.training.checkpointing as checkpointing
from conftest import tiny_config, train
from engine.run.events import LogEvent, RunFinished, StepMetrics
from engine.run.rundir import METRICS, RunWriter, read_jsonl


class FillingFile:
    """A file that takes ``before`` writes, then fails ``failures`` times (the first failure
    after writing half of what it was given, as a full disk does), then works again."""

    def __init__(self, real, before: int, failures: int) -> None:
        self.real, self.before, self.failures = real, before, failures

    def write(self, data: bytes) -> int:
        if self.before > 0:
            self.before -= 1
            return self.real.write(data)
        if self.failures > 0:
            self.failures -= 1
            if self.failures % 2:
                self.real.write(data[: len(data) // 2])  # torn
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real.write(data)

    def close(self) -> None:
        self.real.close()


def test_the_writer_keeps_what_the_disk_refused_and_writes_it_in_order(tmp_path):
    writer = RunWriter(tmp_path)
    writer._files[METRICS] = FillingFile(writer._files[METRICS], before=2, failures=3)
    for step in range(1, 9):
        writer(StepMetrics(step=step, metrics={"reward": step / 10}))
        writer.raise_failure()  # a full disk is not a failure of the run
    writer.close()
    records = read_jsonl(tmp_path / METRICS)
    assert [r["step"] for r in records] == list(range(1, 9))  # every step once, in order, the torn line skipped
    notices = writer.take_notices()
    assert notices[0][0] == "error" and "No space left on device" in notices[0][1]
    assert notices[-1][0] == "info" and "kept records written" in notices[-1][1]


@pytest.mark.slow
def test_a_run_goes_on_through_a_full_disk_and_resumes_exactly(tmp_path, monkeypatch):
    real_write = checkpointing.write_checkpoint
    calls = []

    def write_checkpoint(path, **kwargs):
        calls.append(path.name)
        if len(calls) == 1:  # torch's writer on a full disk
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 1024 vs 512\nmore")
        return real_write(path, **kwargs)

    monkeypatch.setattr(checkpointing, "write_checkpoint", write_checkpoint)
    real_init = RunWriter.__init__

    def filling_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self._files[METRICS] = FillingFile(self._files[METRICS], before=3, failures=4)

    monkeypatch.setattr(RunWriter, "__init__", filling_init)
    cfg = tiny_config(tmp_path, "max_steps=6", "save_steps=2")
    trainer, events = train(cfg)
    assert isinstance(events[-1], RunFinished), events[-1]
    logs = [e for e in events if isinstance(e, LogEvent)]
    failed = [e.message for e in logs if e.category == "checkpoint" and e.level == "error"]
    assert failed == ["checkpoint at step 2 could not be written: RuntimeError: [enforce fail at "
                      "inline_container.cc:626] . unexpected pos 1024 vs 512"]
    disk = [e for e in logs if e.category == "disk"]
    assert disk and disk[0].level == "error" and disk[-1].level == "info"
    run = trainer.run_dir
    assert [r["step"] for r in read_jsonl(run / METRICS)] == list(range(0, 7))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000004", "step-000006"]

    # a process killed while writing a checkpoint leaves its temporary folder: the next start removes it
    (run / "checkpoints" / ".tmp-step-000007").mkdir()
    from engine.run.control import Control
    from engine.training.trainer import Trainer

    resumed = Trainer.resume(run, control=Control())
    resumed.cfg.max_steps = 8
    resumed.run()
    assert [r["step"] for r in read_jsonl(run / METRICS)] == list(range(0, 9))
    assert not (run / "checkpoints" / ".tmp-step-000007").exists()


@pytest.mark.slow
def test_a_final_save_on_a_full_disk_keeps_the_weights_in_a_checkpoint_and_resume_saves_it(tmp_path, monkeypatch):
    """The last step's final/ cannot be written: no half-written final/ is left, a checkpoint of
    that step holds the weights, the run ends with one line saying so, and `resume` (space
    freed) writes final/ from it without training again."""
    import engine.training.trainer as trainer_module
    from engine.run.control import Control
    from engine.run.events import RunFailed
    from engine.training.trainer import Trainer

    real_save = trainer_module.save_final

    def full_disk(model, tokenizer, path, *args):
        (path / "partial").mkdir(parents=True)  # what a writer leaves before the disk fills
        raise RuntimeError("SafetensorError: No space left on device (os error 28)")

    monkeypatch.setattr(trainer_module, "save_final", full_disk)
    cfg = tiny_config(tmp_path, "max_steps=2", "log_completions_groups=0")
    trainer, events = train(cfg, evaluate=False)
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.traceback_path is None
    assert failed.error.startswith("the final model could not be saved (RuntimeError: SafetensorError: No space")
    assert "checkpoint step-000002 holds this step" in failed.error and "grpo-tui resume" in failed.error
    run = trainer.run_dir
    assert not (run / "final").exists() and not (run / "final.tmp").exists()
    assert (run / "checkpoints" / "step-000002").is_dir()

    from engine.run.listing import summarize_run

    listed = summarize_run(run)
    assert listed.resume_problem() is None and listed.resumable
    assert listed.resume_plan() == "save the final model from the checkpoint at step 2 (no step is trained again)"
    monkeypatch.setattr(trainer_module, "save_final", real_save)
    control, events = Control(), []
    control.subscribe(events.append)
    resumed = Trainer.resume(run, control=control)
    resumed.run()
    assert isinstance(events[-1], RunFinished) and events[-1].summary["steps"] == 2
    assert (run / "final" / "config.json").is_file()
    assert [r["step"] for r in read_jsonl(run / METRICS) if "reward" in r] == [1, 2]  # no step trained twice
    assert summarize_run(run).resume_problem().endswith("nothing to resume")
