"""The Textual app: a launcher, the dashboard of a live or recorded run, the inspector
and the preset editor.

One live run at a time. Its engine thread reaches the app only through
``Control.subscribe`` → ``App.post_message(EngineEvent)``; the event is applied to the
run's :class:`RunModel` here, on the UI thread, and the dashboard redraws from the model
on a timer.

The run outlives the terminal: on SIGHUP the app stops drawing and exits, while the same
engine thread trains on as a detached run (output to ``RUN_DIR/console.log``) until the run
ends. SIGTERM stops the run at its next step boundary with a checkpoint, then quits.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual.app import App
from textual.binding import Binding

from engine.run.events import RunState

from grpo_tui.model.live import apply_event, load_history
from grpo_tui.model.run_model import RunModel
from grpo_tui.model.session import EngineEvent, LiveRun
from grpo_tui.model.signals import (CONSOLE_LOG, TERMINAL_CLOSED, Signals, abandon, announce_stop, exit_code,
                                    send_output_to, signal_name, terminal_closed_event, wait_for_engine)

LIVE_SCREEN = "live-dashboard"


PRESETS_CHECKED = "presets-checked"  # the worker that validates the presets and imports the engine


class GrpoApp(App):
    """grpo-tui. ``preset`` starts training straight away; ``run_dir`` opens a run read-only."""

    CSS_PATH = "app.tcss"
    TITLE = "grpo-tui"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark,f1", "help", "Help: every key of this screen", id="app.help", show=False),
    ]

    def __init__(
        self,
        preset: str | None = None,
        overrides: Iterable[str] = (),
        run_dir: str | None = None,
        start_screen: str = "launcher",
        *,
        clock: Callable[[], float] | None = None,
        runs_root: str | Path = "runs",
        presets_finder: Callable[[], list[Any]] | None = None,
        attach: str | None = None,
        resume: str | None = None,
        on_fault: str = "pause",
        compare: Iterable[str] = (),
    ) -> None:
        """``attach``: follow a run another process trains, with its controls; ``resume``:
        continue an interrupted run in this process from its newest complete checkpoint.
        ``on_fault``: what a repeated fault does to a run trained here ("pause": someone is
        watching; "fail"). ``compare``: run directories to open overlaid."""
        super().__init__()
        self.compare_dirs = list(compare)
        self.on_fault = on_fault
        self.attach_dir = attach
        self.resume_dir = resume
        self.preset = preset
        self.overrides = list(overrides)
        self.run_dir = run_dir
        self.start_screen = start_screen
        self.clock: Callable[[], float] = clock or time.time
        self.runs_root = Path(runs_root)
        self._presets_finder = presets_finder
        self.live: LiveRun | None = None
        self.live_model: RunModel | None = None
        self._quit_when_done = False
        self._handing_over = False  # "Detach" was chosen: a background process resumes the run
        self._signals: Signals | None = None  # set while run() runs in the main thread
        self._code_without_terminal: int | None = None
        self._engine_loaded = False  # torch and the engine are imported: validating presets is quick

    # -- sources the screens use (injectable for tests) ------------------------------
    def find_presets(self) -> list[Any]:
        """The presets, validated; listed unchecked (``ok`` None) until the model libraries
        are loaded after the first frame (validation needs them), then checked afresh each time."""
        if self._presets_finder is not None:
            return self._presets_finder()
        from engine.config.presets import find_presets

        return find_presets(validate=self._engine_loaded)

    def _load_engine(self) -> None:
        """In a thread, after the first frame: torch and transformers take seconds to import,
        so they load while the user looks at the screen and starting a run does not freeze keys;
        then the launcher's presets show whether they validate."""
        try:
            import engine.training.trainer  # noqa: F401

            if self._presets_finder is None:
                from engine.config.presets import find_presets

                find_presets()  # the first validation imports what the checks need (peft, reward modules)
        except Exception as err:  # noqa: BLE001 - a library that fails to load shows in the presets' checks
            self.log.warning(f"loading the engine failed: {err!r}")
        finally:
            self._engine_loaded = True
        try:
            self.call_from_thread(self._refresh_launchers)
        except RuntimeError:  # the app closed meanwhile
            pass

    def _refresh_launchers(self) -> None:
        from grpo_tui.screens.launcher import LauncherScreen

        for screen in self.screen_stack:
            if isinstance(screen, LauncherScreen):
                screen.action_refresh()

    def list_runs(self) -> list[Path]:
        from engine.run.rundir import list_runs

        return list_runs(self.runs_root)

    # -- the process: signals, and training on without a terminal --------------------
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the app; if its terminal went away meanwhile, train on without it until the
        run ends (the process then exits)."""
        if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
            return super().run(*args, **kwargs)
        self._signals = Signals(notify=self._on_signal).install((signal.SIGTERM, signal.SIGHUP))
        try:
            result = super().run(*args, **kwargs)
            if self._signals.hangup:
                self._train_on_without_terminal()
        finally:
            self._signals.restore()
        return result

    @property
    def return_code(self) -> int | None:
        if self._code_without_terminal is not None:
            return self._code_without_terminal
        return super().return_code

    def _on_signal(self, signum: int) -> None:
        """In the signal handler: hand the signal to the event loop (nothing else is safe here)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._act_on_signal, signum)
            except RuntimeError:  # the loop closed meanwhile: run() acts on what was noted
                pass

    def _act_on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.exit()  # nothing to draw on; run() trains on
            return
        live, stops = self.live, self._signals.stops if self._signals else [signum]
        if len(stops) > 1:  # a second SIGTERM: now, leaving the newest complete checkpoint
            if live is not None and live.alive:
                abandon(live.control, live.run_dir, live.step, f"by a second {signal_name(signum)}")
            self.exit(return_code=exit_code(signum))
        elif self.training:
            announce_stop(live.control, signum, live.step, lambda text: self.notify(text, timeout=30))
            self._quit_when_done = True
        else:
            self.exit(return_code=exit_code(signum))

    def _stopped_code(self) -> int:
        """0 for a run that finished; 128 + the signal for one a signal stopped early; 1 for one that failed."""
        summary = self.live.summary if self.live is not None else {}
        if "error" in summary:
            return 1
        stop = self._signals.stop_signal if self._signals else None
        if stop is not None and summary.get("steps", 0) < summary.get("max_steps", 0):
            return exit_code(stop)
        return 0

    def _train_on_without_terminal(self) -> None:
        """The terminal went away while the app ran: the same engine thread trains on (no
        step redone, nothing reloaded), printing to the run's console.log, steered through
        its run directory like a detached run, until the run ends."""
        live = self.live
        if live is None or not live.alive and not self._handing_over:
            return
        live.run_dir.mkdir(parents=True, exist_ok=True)
        send_output_to(live.run_dir / CONSOLE_LOG)
        print(f"{TERMINAL_CLOSED} (pid {os.getpid()}, step {live.step})", flush=True)
        if live.alive:
            live.control.publish(terminal_closed_event(live.step))
        self._signals.install((signal.SIGINT,))  # no key reaches the app now: Ctrl-C is a signal again
        wait_for_engine(live.thread, live.control, live.run_dir, lambda: live.step, self._signals,
                        lambda text: print(text, flush=True), announced=bool(self._signals.stops))
        if self._handing_over:
            code, message = self._start_background_resume()
            print(message, flush=True)
            self._code_without_terminal = code
        else:
            self._code_without_terminal = self._stopped_code()

    # -- start -----------------------------------------------------------------------
    def on_mount(self) -> None:
        from grpo_tui.screens.launcher import LauncherScreen

        if not self.preset:  # after the first frame: importing in a thread holds up the drawing
            self.call_after_refresh(lambda: self.run_worker(self._load_engine, thread=True, group=PRESETS_CHECKED,
                                                            exit_on_error=False))
        if self.attach_dir:
            if not self.attach_run(self.attach_dir):
                self.push_screen(LauncherScreen())
        elif self.resume_dir:
            if not self.start_run(None, resume_dir=self.resume_dir):
                self.push_screen(LauncherScreen())
        elif self.preset:
            if not self.start_run(self.preset, self.overrides):
                self.push_screen(LauncherScreen())
        elif self.run_dir:
            if not self.open_run(self.run_dir):
                self.push_screen(LauncherScreen())
        elif self.compare_dirs:
            if not self.compare_runs(self.compare_dirs):
                self.push_screen(LauncherScreen())
        else:
            self.push_screen(LauncherScreen())
        if self._signals is not None and self._signals.hangup:  # the terminal went away while starting
            self.exit()

    def start_run(self, preset: str | None, overrides: Iterable[str] = (), resume_dir: str | None = None) -> bool:
        """Load and validate the preset (or the run to resume), start the engine and show its dashboard."""
        from engine.config.schema import ConfigError
        from engine.config.presets import load_preset

        from grpo_tui.screens.dashboard import DashboardScreen

        if self.live is not None and self.live.alive:
            self.notify("A run is already training; stop it first (d shows it).", severity="warning")
            return False
        try:
            cfg = load_preset(preset, list(overrides)) if resume_dir is None else None
        except ConfigError as err:
            self.notify(str(err), title="Cannot start", severity="error", timeout=15)
            return False
        try:
            live = LiveRun(cfg, self.post_message, resume_dir=resume_dir, on_fault=self.on_fault)
            cfg = live.cfg
        except Exception as err:  # noqa: BLE001 - a clear message, never a traceback
            self.notify(f"{type(err).__name__}: {err}", title="Cannot start", severity="error", timeout=15)
            return False
        model = RunModel()
        if live.resume_step is not None:  # the run's history first: charts from step 1, earlier events
            load_history(model, live.run_dir, live.resume_step)
        from engine.config.schema import config_to_dict

        model.set_run_info(run_dir=str(live.run_dir), config=config_to_dict(cfg), time=self.clock())
        if self.live is not None:
            self.live.detach()
            if self.is_screen_installed(LIVE_SCREEN):
                self._pop_to_bottom_or_remove(LIVE_SCREEN)
        self.live, self.live_model = live, model
        self.install_screen(DashboardScreen(model, live), name=LIVE_SCREEN)
        self.push_screen(LIVE_SCREEN)
        live.start()
        return True

    def _pop_to_bottom_or_remove(self, name: str) -> None:
        screen = self.get_screen(name)
        if screen in self.screen_stack:
            self.notify("Previous run dashboard closed", timeout=2)
            while self.screen is not screen and len(self.screen_stack) > 1:
                self.pop_screen()
            if len(self.screen_stack) > 1:
                self.pop_screen()
        self.uninstall_screen(name)

    def attach_run(self, run_dir: str) -> bool:
        """The dashboard of a run another process trains, controls included."""
        from grpo_tui.model.follow import open_run_dir
        from grpo_tui.screens.dashboard import DashboardScreen
        from grpo_tui.model.session import AttachedRun

        path = Path(run_dir)
        try:
            run = AttachedRun(path)
        except Exception as err:  # noqa: BLE001 - a clear message, never a traceback
            self.notify(f"cannot attach to {run_dir}: {err}", severity="error", timeout=10)
            return False
        model, follower = open_run_dir(path)
        model.read_only = False
        self.push_screen(DashboardScreen(model, live=run, follower=follower))
        if not run.alive:
            self.notify(f"{path.name} is {run.state}: shown as it was left", timeout=6)
        return True

    def open_run(self, run_dir: str) -> bool:
        """Show a run directory read-only (finished, failed, or being written elsewhere)."""
        from grpo_tui.screens.dashboard import DashboardScreen

        path = Path(run_dir)
        if self.live is not None and Path(self.live.run_dir).resolve() == path.resolve():
            self.action_show_dashboard()
            return True
        if not path.is_dir():
            self.notify(f"not a run directory: {run_dir}", severity="error", timeout=10)
            return False
        from grpo_tui.model.follow import open_run_dir

        model, follower = open_run_dir(path)
        self.push_screen(DashboardScreen(model, follower=follower))
        return True

    def compare_runs(self, run_dirs: list[str]) -> bool:
        """Two or more runs' metrics overlaid and their configs diffed."""
        from grpo_tui.screens.compare import CompareScreen

        missing = [d for d in run_dirs if not Path(d).is_dir()]
        if missing or len(run_dirs) < 2:
            self.notify(f"not a run directory: {missing[0]}" if missing else "compare needs two or more runs",
                        severity="error", timeout=10)
            return False
        self.push_screen(CompareScreen.open(run_dirs))
        return True

    # -- engine events ---------------------------------------------------------------
    def on_engine_event(self, message: EngineEvent) -> None:
        if self.live_model is None:
            return
        try:
            apply_event(self.live_model, message.event)
        except Exception as err:  # noqa: BLE001 - one odd event must not end the app and the run with it
            self.log.error(f"could not apply {message.event!r}: {err!r}")
        if self._quit_when_done and self.live_model.is_terminal:
            self.exit(return_code=self._stopped_code())

    # -- navigation ------------------------------------------------------------------
    def action_show_launcher(self) -> None:
        from grpo_tui.screens.launcher import LauncherScreen

        if any(isinstance(s, LauncherScreen) for s in self.screen_stack[:-1]):
            while not isinstance(self.screen, LauncherScreen):
                self.pop_screen()
            self.call_after_refresh(self.screen.focus_presets)  # where a new run starts, not the run opened
        elif not isinstance(self.screen, LauncherScreen):
            self.push_screen(LauncherScreen())

    def action_show_dashboard(self) -> None:
        if not self.is_screen_installed(LIVE_SCREEN):
            self.notify("No live run", timeout=2)
            return
        screen = self.get_screen(LIVE_SCREEN)
        if screen in self.screen_stack:
            while self.screen is not screen:
                self.pop_screen()
        else:
            self.push_screen(LIVE_SCREEN)

    @property
    def training(self) -> bool:
        return (
            self.live is not None
            and self.live.alive
            and self.live_model is not None
            and not self.live_model.is_terminal
        )

    async def action_quit(self) -> None:
        """Quit; while training, ask first (stop and save, or leave the run unfinished)."""
        from grpo_tui.screens.confirm import quit_dialog

        if not self.training:
            self.exit()
            return

        def answer(choice: str | None) -> None:
            if choice == "stop" and self.live is not None:
                self._quit_when_done = True
                self.live.control.stop()
                self.notify("Stopping: saving the final model, then quitting…", timeout=10)
            elif choice == "detach" and self.live is not None:
                self._handing_over = True
                self.live.control.handover()
                self.notify("Detaching: checkpointing, then training goes on in the background…", timeout=10)
                self.set_interval(0.2, self._continue_in_background)
            elif choice == "abandon":
                if self.live is not None and self.live.alive:  # recorded, so the run lists as abandoned
                    abandon(self.live.control, self.live.run_dir, self.live.step)
                self.exit()

        self.push_screen(quit_dialog(paused=self.live_model.state == RunState.PAUSED), answer)

    def _continue_in_background(self) -> None:
        """Once the engine thread has checkpointed and ended, resume the run in its own process."""
        if self.live is None or self.live.alive or self._signals is not None and self._signals.hangup:
            return  # still checkpointing; or the terminal went away and run() hands over
        code, message = self._start_background_resume()
        self.exit(return_code=code, message=message)

    def _start_background_resume(self) -> tuple[int, str]:
        """``grpo-tui resume RUN --detach``: its exit code and what it printed."""
        import subprocess
        import sys

        started = subprocess.run([sys.executable, "-m", "grpo_tui", "resume", str(self.live.run_dir), "--detach"],
                                 capture_output=True, text=True)
        return started.returncode, started.stdout.strip() or started.stderr.strip()

    def action_help(self) -> None:
        """The keys of the screen in front, in a dialog that Esc or ? closes."""
        from grpo_tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
        else:
            self.push_screen(HelpScreen(self.screen))

    def on_unmount(self) -> None:
        if self.live is not None:
            self.live.detach()
