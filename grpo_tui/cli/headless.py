"""Headless training: a progress line on stdout, a summary at the end.

Ctrl-C (SIGINT) or SIGTERM stops at the next step boundary with a checkpoint and the final
model, and a second one abandons the run (see :mod:`grpo_tui.model.signals`); SIGHUP moves
the output to the run's console.log and training goes on.

Nobody is there to fix a fault and resume, so a fault that would pause the dashboard ends a
headless run by default (``on_fault="fail"``: checkpoint, one line naming the cause, exit
1). A background run (``--detach``) pauses instead, waiting for ``grpo-tui attach`` or
``grpo-tui send``; a run stopped while a fault stands exits 1 too, never as finished."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading

from engine.run.control import Control

from engine.run.events import LogEvent, RunFailed, RunFinished, RunStarted, StepMetrics
from engine.run.progress import PHASES, Progress
from engine.training.trainer import Trainer

from grpo_tui.model.format import bar, format_duration
from grpo_tui.model.signals import (CONSOLE_LOG, TERMINAL_CLOSED, Signals, exit_code, send_output_to, signal_name,
                                    terminal_closed_event, wait_for_engine)

BAR = 24


def progress_line(step: int, total: int, m: dict) -> str:
    """``step 12/300 ━━━───── 4% reward 0.41 acc 0.39 kl 0.0021 1.3 step/s ETA 3:12``"""
    frac = step / max(total, 1)
    parts = [f"step {step}/{total}", bar(step, max(total, 1), BAR, glyphs="━─"), f"{frac:4.0%}",
             f"reward {_num(m.get('reward'), '.3f')}"]
    if "accuracy" in m:
        parts.append(f"acc {_num(m['accuracy'], '.3f')}")
    if "kl" in m:
        parts.append(f"kl {m['kl']:.4f}")
    if "tools/call_frequency" in m:  # a tool run: calls per episode, and the share that failed
        parts.append(f"tools {m['tools/call_frequency']:.2f}/ep")
        if m.get("tools/failure_frequency"):
            parts.append(f"fail {m['tools/failure_frequency']:.0%}")
    if m.get("step_time"):
        parts.append(f"{1.0 / m['step_time']:.1f} step/s")
    parts.append(f"ETA {format_duration(m.get('eta_s'))}")
    return " ".join(parts)


PHASE_EVERY_S = 30.0  # a log (not a terminal) gets a phase line at most this often


def phase_text(event: Progress, with_step: bool = True) -> str:
    """``step 4 · generating 37% · token 380/1024 · 9/64 finished · 412 tok/s``"""
    parts = [(f"step {event.step} · " if with_step else "") + PHASES.get(event.phase, event.phase)
             + (f" {event.fraction:.0%}" if event.fraction is not None and event.total > 1 else "")]
    if event.total > 1:
        parts.append(f"token {event.done:.0f}/{event.total:.0f}" if event.unit == "tokens"
                     else f"{event.done:.0f}/{event.total:.0f} {event.unit}")
    if event.detail:
        parts.append(event.detail)
    return " · ".join(parts)


def _num(value, spec: str) -> str:
    """``value`` formatted, or ``—`` when missing (a step whose reward functions failed)."""
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "—"


class HeadlessPrinter:
    """The run on stdout: a line per step (rewritten in place on a terminal), warnings and
    checkpoints on lines of their own, and the step under way — on a terminal after the step
    line as it changes, in a log every :data:`PHASE_EVERY_S` during a long step."""

    def __init__(self, out=sys.stdout) -> None:
        self.out = out
        self.tty = out.isatty()
        self.total = 0
        self.every = 1
        self.width = 0
        self.lock = threading.Lock()
        self.step_line = ""
        self.phase_logged_at = 0.0

    def __call__(self, event) -> None:
        with self.lock:
            if isinstance(event, RunStarted):
                self.total = event.total_steps
                self.every = max(1, int(event.config.get("logging_steps") or 1))
                self._line(f"run {event.run_dir} · model {event.model} · {event.device} · {event.total_steps} steps")
            elif isinstance(event, StepMetrics):
                line = progress_line(event.step, self.total, event.metrics)
                self.step_line = (f"step {event.step}/{self.total} reward {_num(event.metrics.get('reward'), '.3f')} "
                                  f"ETA {format_duration(event.metrics.get('eta_s'))}")
                if self.tty:
                    self._rewrite(line)
                elif event.step % self.every == 0 or event.step == self.total:
                    self._line(line)
                self.phase_logged_at = event.time
            elif isinstance(event, Progress) and event.step > 0:
                if self.tty:
                    self._rewrite(f"{self.step_line} │ {phase_text(event, with_step=False)}" if self.step_line
                                  else phase_text(event))
                elif event.time - max(self.phase_logged_at, event.step_started) >= PHASE_EVERY_S:
                    self.phase_logged_at = event.time
                    self._line("  " + phase_text(event))
            elif isinstance(event, LogEvent) and (event.level != "info" or event.category in ("eval", "checkpoint", "adjust")):
                self._line(f"[{event.level}] {event.message}")

    def _rewrite(self, line: str) -> None:
        """The terminal's last line, replaced (cut to the terminal's width: a wrapped line
        could not be rewritten)."""
        import shutil

        line = line[: max(20, shutil.get_terminal_size().columns - 1)]
        self.out.write("\r" + line.ljust(self.width))
        self.width = len(line)
        self.out.flush()

    def note(self, text: str) -> None:
        """A line of its own, from any thread."""
        with self.lock:
            self._line(text)

    def _line(self, text: str) -> None:
        if self.tty and self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.width = 0
        self.out.write(text + "\n")
        self.out.flush()


def print_summary(summary: dict, out=sys.stdout) -> None:
    before, after = summary.get("eval_accuracy_before"), summary.get("eval_accuracy_after")
    out.write("\n── summary " + "─" * 40 + "\n")
    if before is not None and after is not None:
        out.write(f"held-out greedy accuracy  {before:.3f} → {after:.3f} ({(after - before) * 100:+.1f} points)\n")
    out.write(f"steps                     {summary['steps']}/{summary['max_steps']}\n")
    out.write(f"wall time                 {format_duration(summary['wall_time_s'])} ({summary['wall_time_s']:.1f} s)\n")
    if summary.get("skipped_updates"):
        out.write(f"skipped updates (NaN)     {summary['skipped_updates']}\n")
    out.write(f"model saved to            {summary['final_model']}\n")
    out.write(f"run directory             {summary['run_dir']}\n")
    out.flush()


def train_headless(cfg, on_fault: str = "fail") -> int:
    """Train on a background thread; Ctrl-C asks for a clean stop (the final model is saved)."""
    return _run_headless(Trainer(cfg, control=Control(), on_fault=on_fault))


def _run_headless(trainer: Trainer) -> int:
    try:
        code = _run_and_report(trainer)
    finally:
        grouped = end_process_group()
    if grouped:
        leave_process(code)
    return code


def end_process_group() -> bool:
    """With several processes: leave the process group together (a barrier, then destroy it);
    whether there was one to leave."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return True


def leave_process(code: int) -> None:
    """End a rank of a multi-process run with ``code`` once its run is over and saved: exit
    functions run and output is flushed, then the process exits without the interpreter's
    teardown. Left to that teardown, a daemon thread inside torch, or a C++ thread of the
    process group still joinable when static destructors run, aborts the rank with
    "terminate called without an active exception", and the launch fails a finished run."""
    import atexit

    # The run is over and saved: torch's launcher, seeing another rank end with a stop's code,
    # sends SIGTERM to the rest; it must not cut these last steps short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    shutdown = getattr(threading, "_shutdown", None)  # what a normal exit runs first: threading's exit
    if shutdown is not None:  # hooks (idle executors end), then it joins the threads that are not daemons
        shutdown()
    atexit._run_exitfuncs()  # then the exit functions: trackers, logging.shutdown and the like
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone (the terminal went away)
            pass
    os._exit(code)


def _run_and_report(trainer: Trainer) -> int:
    from engine.parallel.distributed import process_state

    control = trainer.control
    main = process_state().is_main_process  # with several processes, rank 0 alone prints
    printer = HeadlessPrinter()
    if main:
        control.subscribe(printer)
    outcome: dict = {}
    control.subscribe(lambda e: outcome.__setitem__("event", e) if isinstance(e, (RunFinished, RunFailed)) else None)
    # SIGINT and SIGTERM stop at the next step boundary with a checkpoint; SIGHUP (the
    # terminal went away) moves the output to console.log and the run goes on.
    signals = Signals().install((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    thread = trainer.start()
    try:
        say = printer.note if main else (lambda text: None)
        stopped_by = wait_for_engine(thread, control, trainer.run_dir, lambda: trainer.step, signals, say,
                                     on_hangup=lambda: _terminal_closed(trainer, printer))
    finally:
        signals.restore()
    event = outcome.get("event")
    if isinstance(event, RunFinished):
        summary = event.summary
        if main:
            print_summary(summary)
        if stopped_by is not None and summary["steps"] < summary["max_steps"]:
            if main:
                print(f"stopped by {signal_name(stopped_by)} at step {summary['steps']} of {summary['max_steps']}; "
                      f"continue with: grpo-tui resume {summary['run_dir']} --headless", flush=True)
            return exit_code(stopped_by)
        if summary.get("fault"):  # paused by a fault, then stopped (send stop, the dashboard)
            if main:
                print(f"grpo-tui: run stopped after a fault: {summary['fault']}; continue with: "
                      f"grpo-tui resume {summary['run_dir']}", file=sys.stderr, flush=True)
            return 1
        if summary["steps"] < summary["max_steps"] and main:  # `grpo-tui send RUN stop`: asked for, so 0
            print(f"stopped at step {summary['steps']} of {summary['max_steps']}; "
                  f"continue with: grpo-tui resume {summary['run_dir']} --headless", flush=True)
        return 0
    message = event.error if isinstance(event, RunFailed) else "the run ended without a result"
    where = f" (details: {event.traceback_path})" if isinstance(event, RunFailed) and event.traceback_path else ""
    print(f"\ngrpo-tui: run failed: {message}{where}", file=sys.stderr)
    return 1


def _terminal_closed(trainer: Trainer, printer: HeadlessPrinter) -> None:
    """The terminal went away: what would have gone to it goes to the run's console.log."""
    trainer.run_dir.mkdir(parents=True, exist_ok=True)
    send_output_to(trainer.run_dir / CONSOLE_LOG)
    printer.tty = False  # a log file from now on: whole lines, no carriage returns
    printer.note(f"{TERMINAL_CLOSED} (pid {os.getpid()}, step {trainer.step})")
    trainer.control.publish(terminal_closed_event(trainer.step))


def resume_headless(run_dir: str, on_fault: str = "fail") -> int:
    """Continue ``run_dir`` from its newest complete checkpoint, headless."""
    from engine.training.trainer import NoCheckpoint

    try:
        trainer = Trainer.resume(run_dir, control=Control(), on_fault=on_fault)
    except (NoCheckpoint, FileNotFoundError) as exc:
        print(f"grpo-tui: {exc}", file=sys.stderr)
        return 2
    return _run_headless(trainer)
