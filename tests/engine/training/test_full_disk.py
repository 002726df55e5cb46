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
