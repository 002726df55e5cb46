"""The GRPO loop: generate → score → advantages → update → report → checkpoint.

``Trainer(cfg, control).start()`` runs it on a background thread; ``run()`` runs it in the
calling thread (headless). Everything a viewer needs leaves through ``control.publish`` (the
run-directory writer is one subscriber); everything a viewer may change comes in through
``control`` and is applied at a step boundary.

:meth:`Trainer.train` is the loop, in the order a step happens. What it calls are
collaborators, each in its own module: :mod:`~engine.training.setup` (what a run trains
with), :mod:`~engine.training.geometry` (rounds and steps), :mod:`~engine.training.round`
(generate, score, advantages), :mod:`~engine.training.update` (the optimizer step),
:mod:`~engine.training.step_report`, :mod:`~engine.training.evaluation`,
:mod:`~engine.training.checkpointing`, :mod:`~engine.training.steering` (pause, stop,
adjust) and :mod:`~engine.training.faults`.
"""

from __future__ import annotations

import gc
import os
import shutil
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from engine.config.presets import config_from_yaml
from engine.config.schema import ConfigError, RunConfig, config_to_dict, dump_yaml
from engine.agents.tools import AgentError
from engine.data.prompts import DataError, PromptData
from engine.parallel.distributed import Dist
from engine.parallel.sharding import full_state_dict
from engine.rewards.isolation import close_workers, isolate
from engine.rollout.backend import SamplingParams
from engine.run.channel import ChannelServer
from engine.run.control import Control
from engine.run.events import RunFailed, RunFinished, RunStarted, RunState
from engine.run.jsonl import read_jsonl
from engine.run.lock import RunLock, RunLocked
from engine.run.progress import ProgressFile
from engine.run.reporting import close_reporters
from engine.run.rundir import METRICS, NullWriter, RunWriter, truncate_after
from engine.training import checkpointing as ckpt
from engine.training.checkpointing import CheckpointRefused, NoCheckpoint, TrainState  # noqa: F401
from engine.training.evaluation import Evaluator
from engine.training.faults import PAUSE_AFTER_FAILURES, Faults, RunFault, check_fault_policy  # noqa: F401
from engine.training.forwards import Forwards
from engine.training.geometry import RoundGeometry
from engine.training.checkpoint_files import fsync_dir, fsync_tree
from engine.training.model_card import write_model_card
from engine.training.model_loading import save_final
from engine.training.progress import StepProgress
from engine.training.publisher import Publisher
from engine.training.round import Rounds, sampling_params
from engine.training.setup import Given, RunParts, setup
from engine.training.steering import Steering
from engine.training.step_report import StepReporter, Stopwatch
from engine.training.update import Updater


def default_run_dir(cfg: RunConfig) -> Path:
    """``runs/<preset>-<YYYYmmdd-HHMMSS>``, with a suffix if two runs start in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{cfg.run_name or 'run'}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class RunDirInUse(ValueError):
    """The chosen run directory already holds a run: training into it would mix two runs."""


def check_run_dir_free(path: str | Path) -> None:
    path = Path(path)
    if (path / "metrics.jsonl").exists() or (path / "config.yaml").exists():
        raise RunDirInUse(f"output directory {path} already holds a run; choose another --output")


class Trainer:
    """One GRPO run: :meth:`run` sets it up, trains (:meth:`train`) and saves it, or resumes
    one (:meth:`resume`). Steer it through ``control``; read it through the events published
    there and the run directory."""

    def __init__(self, cfg: RunConfig, control: Control | None = None, run_dir: str | Path | None = None,
                 evaluate: bool = True, *, model=None, tokenizer=None, reward_funcs: list | None = None,
                 data: PromptData | None = None, ref_model=None, rollout_backend=None,
                 tools: list | None = None, environment_factory=None, rollout_func=None,
                 on_fault: str = "pause") -> None:
        """``model``, ``tokenizer``, ``reward_funcs`` (callables or specs) and ``data`` replace
        what the config would load — the Python API passes objects a notebook already holds.
        ``rollout_backend(model, pad_id, eos_ids)`` makes the generation backend (default: the
        transformers one; see engine.rollout.backend for the interface). ``on_fault``: what a
        repeated fault does — "pause" (someone watches and resumes) or "fail" (checkpoint and
        end as failed: headless, the Python API); see :mod:`engine.training.faults`.
        ``tools``, ``environment_factory`` and ``rollout_func``: TRL's arguments of those names
        (see :mod:`engine.agents`), used instead of the config's ``tools`` / ``environment`` /
        ``rollout_func``."""
        self.cfg = cfg
        self.on_fault = check_fault_policy(on_fault)
        self.evaluate = evaluate
        self._given = Given(model=model, tokenizer=tokenizer, reward_funcs=reward_funcs, data=data,
                            ref_model=ref_model, rollout_backend=rollout_backend, tools=tools,
                            environment_factory=environment_factory, rollout_func=rollout_func)
        self.control = control or Control()
        self.run_dir = Path(run_dir or cfg.output_dir or default_run_dir(cfg))
        self.state = TrainState()  # where the run stands: what a checkpoint saves
        self.summary: dict[str, Any] = {}
        self.resume_from: Path | None = None
        self._saved: ckpt.SavedCheckpoint | None = None  # read by resume(), restored once set up
        self._thread: threading.Thread | None = None
        # Made when the run starts (run()): this process's place, where the run is written, and
        # whom the trainer speaks to.
        self.dist: Dist | None = None
        self.writer: RunWriter | None = None
        self.channel: ChannelServer | None = None
        self.publisher = Publisher(self.control)
        self.reporters: list = []
        # Made by _setup(): what the run trains with, and the collaborators of the loop.
        self.parts: RunParts | None = None
        self.geometry: RoundGeometry | None = None
        self.faults: Faults | None = None
        self.rounds: Rounds | None = None
        self.updater: Updater | None = None
        self.evaluator: Evaluator | None = None
        self.checkpointer: ckpt.Checkpointer | None = None
        self.steering: Steering | None = None
        self.reporter: StepReporter | None = None
        self.progress: StepProgress | None = None
        self.stopwatch = Stopwatch()

    @classmethod
    def resume(cls, run_dir: str | Path, control: Control | None = None, **kwargs) -> Trainer:
        """A trainer that continues ``run_dir`` from its newest complete checkpoint, with the
        config (live adjustments included) that checkpoint saved. Raises :class:`NoCheckpoint`
        when there is none, and :class:`CheckpointRefused` (one of them) for a checkpoint that
        is not data only, before anything of it is used."""
        run_dir = Path(run_dir)
        path = ckpt.latest_checkpoint(run_dir)
        if path is None:
            raise NoCheckpoint(f"{run_dir} has no complete checkpoint to resume from")
        saved = ckpt.read_checkpoint(path)
        cfg = config_from_yaml((path / "config.yaml").read_text(encoding="utf-8"), source=str(path / "config.yaml"))
        trainer = cls(cfg, control=control, run_dir=run_dir, **kwargs)
        trainer.resume_from, trainer._saved = path, saved
        return trainer

    # ------------------------------------------------------------------ entry points
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="grpo-engine", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> dict[str, Any]:
        """Set up, train to the end (or a stop request), save. Never raises: a failure becomes RunFailed."""
        # Several processes (accelerate launch): rank 0 names the run directory and alone
        # writes it and talks to viewers; the others train their share of each batch.
        self.dist = dist = Dist()
        self.run_dir = Path(dist.broadcast(str(self.run_dir)))
        problem = None
        self._lock = RunLock(self.run_dir)
        if dist.is_main:
            try:
                self._lock.acquire()  # one process per run directory, for as long as this one trains
                if self.resume_from is None:
                    check_run_dir_free(self.run_dir)
            except (RunDirInUse, RunLocked) as exc:  # nothing written: the other run's files stay as they were
                problem = str(exc)
        problem = dist.broadcast(problem)
        if problem is not None:
            self._lock.release()
            self.summary = {"error": problem, "steps": 0, "run_dir": str(self.run_dir)}
            self.publisher.publish(RunFailed(error=problem))
            return self.summary
        if self.resume_from is not None:
            self.state.step = ckpt.checkpoint_step(self.resume_from)
            if dist.is_main:
                truncate_after(self.run_dir, self.state.step)  # each step exactly once in the logs
            dist.barrier()
        if dist.is_main:
            self.writer = RunWriter(self.run_dir, step=lambda: self.state.step)
            # first: events published by anyone (the loop, a signal handler) are on disk
            # before a viewer hears of them
            unsubscribe_writer = self.control.subscribe(self.writer, first=True)
            unsubscribe_progress = self.control.subscribe(ProgressFile(self.run_dir))

            def unsubscribe() -> None:
                unsubscribe_writer()
                unsubscribe_progress()

            self.channel = ChannelServer(self.run_dir, self.control, lambda: {
                "state": self.control.state.value, "step": self.state.step,
                "max_steps": max(self.cfg.max_steps, 0)})  # 0: not known yet (-1 until the dataset is read)
            self.channel.start()
        else:
            self.writer, unsubscribe = NullWriter(self.run_dir), lambda: None
        self.publisher = Publisher(self.control, self.writer, self.channel)
        try:
            self._setup()
            self.train()
            if self.steering.requests.handover:
                self._hand_over()
            else:
                self._finish()
        except Exception as exc:  # noqa: BLE001 - reported, written, and the viewer stays alive
            self._fail(exc)
        finally:
            gc.unfreeze()  # the next run in this process (notebooks, tests) starts from a clean slate
            if self.parts is not None:
                close_workers(self.parts.reward_funcs)
                if self.parts.agent is not None:
                    self.parts.agent.close()  # the async tools' event loop
            close_reporters(self.reporters)
            if self.channel is not None:
                self.channel.stop()
            unsubscribe()
            self.writer.close()
            self._lock.release()
        return self.summary

    # ------------------------------------------------------------------ the loop
    def train(self) -> None:
        """The loop: one optimizer step per pass, in the order a step happens (called by
        :meth:`run` once the run is set up)."""
        cfg, state, geometry, publisher = self.cfg, self.state, self.geometry, self.publisher
        while state.step < cfg.max_steps:
            # ---- Steer: adjustments, checkpoint-now and pause, only ever between two steps
            requests = self.steering.between_steps()
            if requests.stop:
                publisher.log("info", "status", f"stop requested at step {state.step}")
                # no longer paused or running: every viewer says so while the stop's work goes on
                publisher.set_state(RunState.STOPPING, f"stopping at step {state.step}: " + (
                    "checkpoint for the background process" if requests.handover
                    else "checkpoint, held-out evaluation, final model"))
                if state.step > 0:  # resumable from where it stopped
                    self.checkpointer.save("stop")
                break
            state.step += 1
            step, t0 = state.step, time.perf_counter()
            self.progress.start_step(step)
            timings: dict[str, float] = {"time/generate": 0.0, "time/reward": 0.0}
            try:
                # ---- Generate, Score, Advantages: a new round every steps_per_round × μ steps
                new_round = geometry.starts_round(step) or state.round is None
                if new_round:
                    with self.parts.weights_for_sampling():
                        scored = self.rounds.generate_and_score(step, timings)
                        state.round = self.rounds.advantages(scored)
                batch = state.round

                # ---- Update: one optimizer step on this step's rows of the round
                t_update = time.perf_counter()
                update = self.updater.step(batch, geometry.rows(step, batch.rollout.completion_ids.size(0)), state)
                timings["time/update"] = time.perf_counter() - t_update

                # ---- Report: metrics (held-out results when due), sampled groups, health alarms
                self.reporter.report(step, batch, update, timings, time.perf_counter() - t0, new_round)
                self.progress.end_step()
            except torch.OutOfMemoryError:
                self.faults.out_of_memory(state, self.parts.optimizer)  # the step runs again once resumed
                continue

            # ---- Checkpoint
            if cfg.save_steps and step % cfg.save_steps == 0:
                self.checkpointer.save("save_steps")

    # ------------------------------------------------------------------ setup and end
    def _setup(self) -> None:
        cfg, dist, state, publisher = self.cfg, self.dist, self.state, self.publisher
        self.writer.write_config(dump_yaml(cfg))  # first, so even a run that fails to load is listed
        publisher.set_state(RunState.STARTING, "loading model")
        asked_steps = cfg.max_steps
        self.parts = parts = setup(cfg, self._given, dist, self.run_dir, self.resume_from, state,
                                   self.reporters, self.control.subscribe)
        if cfg.max_steps != asked_steps:  # -1 became num_train_epochs' steps: viewers and resumes read the total
            self.writer.write_config(dump_yaml(cfg))
        where = isolate(parts.reward_funcs, cfg.reward_timeout)  # user functions in worker processes
        if any(not line.endswith("(built in)") for line in where):
            publisher.log("info", "reward_mode", "reward functions run: " + "; ".join(where))
        self.geometry = geometry = RoundGeometry.of(cfg, dist.world)
        self.faults = Faults(publisher, self.on_fault)
        self.progress = progress = StepProgress(publisher.publish, self._pending, lambda: self.cfg.max_steps)
        forwards = Forwards(cfg, dist, parts)
        self.rounds = Rounds(cfg, dist, parts, forwards, geometry, self.faults, state, progress)
        self.updater = Updater(cfg, dist, parts, forwards, self.faults, publisher, progress)
        self.evaluator = Evaluator(cfg, dist, parts, self.rounds, forwards, publisher, enabled=self.evaluate,
                                   progress=progress)
        self.checkpointer = ckpt.Checkpointer(cfg, dist, parts, state, publisher, self.writer,
                                              keep_round=geometry.reuses_rounds)
        if self.resume_from is not None:  # the checkpoint resumed from holds this step already
            self.checkpointer.saved_step = state.step
        self.steering = Steering(cfg, self.control, dist, parts, state, publisher, self.checkpointer.save,
                                 self.stopwatch, self.reporters, faults=self.faults)
        self.reporter = StepReporter(cfg, dist, parts, state, self.evaluator, publisher, self.stopwatch,
                                     faults=self.faults, log_history=self.rounds.log_history)
        if self.resume_from is not None:
            ckpt.restore(self._saved or ckpt.read_checkpoint(self.resume_from), parts, state, dist)
            self._saved = None
            # trainer_state.log_history goes on from the steps already logged
            self.rounds.log_history.extend(r for r in read_jsonl(self.run_dir / METRICS) if r.get("step"))

        n_params = sum(p.numel() for p in parts.model.parameters())
        devices = self._devices()
        publisher.publish(RunStarted(
            run_dir=str(self.run_dir), config=config_to_dict(cfg), total_steps=cfg.max_steps,
            model=cfg.model_name_or_path, device=devices, start_step=state.step,
        ))
        # in events.jsonl too: a dashboard attached from another process reads model and devices there
        publisher.log("info", "run_started", f"model {cfg.model_name_or_path} ({n_params / 1e6:.2f}M params) on {devices}",
                      data={"model": cfg.model_name_or_path, "device": devices, "total_steps": cfg.max_steps,
                            "processes": dist.world, "sharded": parts.sharded})
        if self.resume_from is not None:
            publisher.log("info", "resume", f"resumed from {self.resume_from} at step {state.step}", step=state.step,
                          data={"checkpoint": str(self.resume_from)})
        if state.step == 0:  # written as step 0's metrics by the run-directory writer
            self.evaluator.before = self.evaluator(0, "before training")
        # Everything alive now (modules, model, data) lives as long as the run: out of the
        # collector's sight, a full collection scans only what the loop makes. With ~0.5M
        # objects after setup, each full collection otherwise stalled every thread 150-300 ms.
        gc.collect()
        gc.freeze()
        self.stopwatch.restart(first_step=state.step)
        publisher.set_state(RunState.RUNNING)

    def _pending(self) -> list[str]:
        """Requests that wait for the step's end, as a viewer should hear of them."""
        control = self.control
        return [name for name, on in (("stop", control.stop_requested), ("pause", control.paused_requested)) if on]

    def _devices(self) -> str:
        """Where the run trains, as the dashboard's status line shows it: ``cuda:0``, or
        ``cuda:0 ×8 FSDP2`` (rank 0's device, the process count, how they share the model)."""
        if not self.dist.enabled:
            return str(self.parts.device)
        return f"{self.parts.device} ×{self.dist.world} {'FSDP2' if self.parts.sharded else 'DDP'}"

    def _finish(self) -> None:
        cfg, state, parts, publisher = self.cfg, self.state, self.parts, self.publisher
        # on_fault="fail" and the fault came on the last step: no step boundary is left to end it at
        fault = self.dist.broadcast(self.faults.fault if self.on_fault == "fail" else None)
        if fault:
            self.checkpointer.save("fault")
            raise RunFault(fault)
        if state.step < cfg.max_steps and state.step > 0:  # stopped early: the last step had no eval
            self.evaluator(state.step, "at stop")  # before saving: merging a LoRA adapter changes the model
        publisher.set_state(RunState.STOPPING, "saving final model")
        final = self.writer.final_dir
        weights = full_state_dict(parts.model)  # sharded: gathered on rank 0 (every rank takes part)
        error = self._save_final(final, weights) if self.dist.is_main else None
        error = self.dist.broadcast(error)
        if error:
            # the trained weights are not lost while a checkpoint of this step can hold them;
            # a resume of a run at its last step saves final/ again
            saved = self.checkpointer.ensure("final model not saved")
            keep = (f"checkpoint {saved.name} holds this step: free space and run `grpo-tui resume {self.run_dir}` "
                    "to save it" if saved else "no checkpoint could be written either: free space first")
            raise RunFault(f"the final model could not be saved ({error}); {keep}")
        self.summary = {
            "steps": state.step,
            "max_steps": cfg.max_steps,
            "wall_time_s": round(self.stopwatch.elapsed(), 2),
            "eval_accuracy_before": self.evaluator.before.get("eval/accuracy"),
            "eval_accuracy_after": self.evaluator.last.get("eval/accuracy"),
            "skipped_updates": state.skipped_updates,
            "final_model": str(final),
            "run_dir": str(self.run_dir),
        }
        # Stopped before max_steps (stop, SIGTERM): a state of its own, resumable from the
        # checkpoint the loop wrote at the stop.
        ended = RunState.FINISHED if state.step >= cfg.max_steps else RunState.STOPPED
        words = ended.value
        if ended == RunState.STOPPED and self.faults.fault:  # paused by a fault, then stopped: not a clean end
            words, self.summary["fault"] = "stopped after a fault", self.faults.fault
        where = f"at step {state.step}" + ("" if ended == RunState.FINISHED else f" of {cfg.max_steps}")
        publisher.log("info", "summary", f"run {words} {where}", step=state.step, data=self.summary)
        publisher.set_state(ended, f"{words} {where}")
        publisher.publish(RunFinished(summary=self.summary))

    def _save_final(self, final: Path, weights) -> str | None:
        """Write final/ whole or not at all (into a temporary folder, renamed when complete);
        None, or why it could not be written (a full disk: OSError, torch's RuntimeError,
        SafetensorError...)."""
        tmp = final.with_name(final.name + ".tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            save_final(self.parts.model, self.parts.tokenizer, tmp, self.cfg.peft, weights)
            write_model_card(tmp, self.cfg, run_dir=self.run_dir, steps=self.state.step,
                             accuracy_before=self.evaluator.before.get("eval/accuracy"),
                             accuracy_after=self.evaluator.last.get("eval/accuracy"))
            fsync_tree(tmp)
            if final.exists():  # a resumed run saves again over the earlier one
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(final.parent)
            return None
        except Exception as exc:  # noqa: BLE001 - reported in one line; the run's checkpoints stay
            shutil.rmtree(tmp, ignore_errors=True)
            lines = str(exc).strip().splitlines()
            return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")

    def _hand_over(self) -> None:
        """End this process's part of the run at a checkpoint; another process resumes it."""
        step = self.state.step
        self.summary = {"handed_over": True, "steps": step, "run_dir": str(self.run_dir)}
        self.publisher.log("info", "detach", f"handed over at step {step}: continuing in a background process",
                           step=step)
        self.publisher.set_state(RunState.STOPPING, "handed over to a background process")

    def _fail(self, exc: Exception) -> None:
        # A fault under on_fault="fail" is one line that says it all; no traceback to keep.
        fault = isinstance(exc, RunFault)
        told = fault or isinstance(exc, (DataError, ConfigError, AgentError))  # the message says it all: no traceback to keep
        tb_path = None if told else self.run_dir / (
            "error.log" if self.dist is None or self.dist.is_main else f"error-rank{self.dist.rank}.log")
        try:
            if tb_path is not None:
                tb_path.write_text(traceback.format_exc(), encoding="utf-8")
        except OSError:
            tb_path = None
        message = str(exc) if told else f"{type(exc).__name__}: {exc}"
        self.summary = {"error": message, "steps": self.state.step, "run_dir": str(self.run_dir)}
        if fault:
            self.summary["fault"] = message
        try:
            self.publisher.log("error", "error", message, step=self.state.step,
                               data={"traceback": str(tb_path) if tb_path else None})
            self.publisher.set_state(RunState.FAILED, message)
        finally:
            self.publisher.publish(RunFailed(error=message, traceback_path=str(tb_path) if tb_path else None))

    # ------------------------------------------------------------------ what callers read
    def sampling_params(self, greedy: bool = False) -> SamplingParams:
        return sampling_params(self.cfg, greedy)

    @property
    def step(self) -> int:
        """Optimizer steps done."""
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = value

    def _part(self, name: str):
        return getattr(self.parts, name) if self.parts is not None else None

    @property
    def model(self):
        return self._part("model")

    @property
    def tokenizer(self):
        return self._part("tokenizer")

    @property
    def ref_model(self):
        return self._part("ref_model")

    @property
    def device(self) -> torch.device | None:
        return self._part("device")

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self._part("optimizer")

    @property
    def scheduler(self):
        return self._part("scheduler")

    @property
    def eval_before(self) -> dict[str, float]:
        """Held-out results before training (empty for a resumed run or without held-out rows)."""
        return self.evaluator.before if self.evaluator is not None else {}

    @property
    def last_eval(self) -> dict[str, float]:
        """The newest held-out results."""
        return self.evaluator.last if self.evaluator is not None else {}
