"""Starting a run outside this process: ``--detach`` (a background process in its own session
that outlives the terminal) and ``--num-processes``/``--fsdp`` (accelerate's launcher)."""

from __future__ import annotations

import os
import sys

from grpo_tui.cli.main import EXIT_CONFIG, _check_resumable, _load
from grpo_tui.cli.rank_launcher import CONSOLE_LOG_ENV, shell_code

def _headless_command(args):
    """``(run_dir, argv)``: the run directory, and the arguments that run this train or resume
    command headless into it (what a background or multi-process launch starts)."""
    from pathlib import Path

    # A background run waits for someone to attach after a fault; a foreground one fails.
    on_fault = args.on_fault or ("pause" if args.detach else None)
    faults = ["--on-fault", on_fault] if on_fault else []
    if args.command == "resume":
        _check_resumable(args.run_dir)
        run_dir = Path(args.run_dir)
        return run_dir, ["resume", str(run_dir), "--headless", *faults]
    from engine.training.trainer import default_run_dir

    cfg = _load(args)
    run_dir = Path(cfg.output_dir) if cfg.output_dir else default_run_dir(cfg)
    argv = ["train", args.preset, "--headless", *sum((["--set", o] for o in args.overrides), []),
            "--output", str(run_dir), *faults]
    if args.max_steps is not None:
        argv += ["--max-steps", str(args.max_steps)]
    return run_dir, argv


def detach(args) -> int:
    """Start the same command headless in its own process session and return at once."""
    run_dir, argv = _headless_command(args)
    return _start_in_background([sys.executable, "-m", "grpo_tui", *argv], run_dir, dict(os.environ))


def _start_in_background(command: list[str], run_dir, env: dict) -> int:
    """Run ``command`` in its own process session (it outlives the terminal), output to
    ``RUN_DIR/console.log``, and say how to watch it."""
    import subprocess

    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / "console.log", "ab")
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**env, "PYTHONUNBUFFERED": "1"})
    code = _wait_until_written(proc, run_dir)
    if code is not None:  # it ended before it wrote its run: a config or start-up problem
        tail = (run_dir / "console.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        print("\n".join(tail) or f"grpo-tui: the background run exited with code {code}", file=sys.stderr)
        return code or 1
    print(f"training in the background (pid {proc.pid}): {run_dir}")
    print(f"  watch:  grpo-tui attach {run_dir}")
    print(f"  output: {run_dir / 'console.log'}")
    return 0


def _wait_until_written(proc, run_dir, limit_s: float = 120.0) -> int | None:
    """Wait until the background run has written its config (so ``attach`` works at once) or
    has ended; its exit code when it ended, else None (after ``limit_s`` it is left to go on)."""
    import time

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            return None if (run_dir / "config.yaml").exists() and code == 0 else code
        if (run_dir / "config.yaml").exists():
            return None
        time.sleep(0.1)
    return None


def launch_processes(args) -> int:
    """``train|resume --num-processes N``: the same command, headless, under ``accelerate
    launch``: one process per GPU (or N CPU processes talking over gloo where there is no GPU)."""
    import socket
    import subprocess
    from pathlib import Path

    import torch

    n = args.num_processes or 0
    if args.num_processes is not None and n < 1:
        print("grpo-tui: --num-processes must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    if args.fsdp:
        problem = _fsdp_setup(args)
        if problem:
            print(f"grpo-tui: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        n = args.num_processes
    if args.accelerate_config:
        problem = _accelerate_config_problem(Path(args.accelerate_config))
        if problem:
            print(f"grpo-tui: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    run_dir, argv = _headless_command(args)
    with socket.socket() as s:  # a free port, so two runs on one machine do not collide
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    env[CONSOLE_LOG_ENV] = str(run_dir / "console.log")
    launch = [sys.executable, "-m", "grpo_tui.cli.rank_launcher", "--main_process_port", str(port)]
    if args.accelerate_config:
        launch += ["--config_file", args.accelerate_config]
    if n:
        launch += ["--num_processes", str(n), "--num_machines", "1"]
    if not args.accelerate_config:
        launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        if n > 1:
            launch += ["--multi_gpu"]
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "1"  # several processes then talk over gloo on the CPU
    command = [*launch, "-m", "grpo_tui", *argv]
    if args.detach:
        return _start_in_background(command, run_dir, env)
    print(f"training on {n or 'the configured'} processes: {run_dir}", flush=True)
    return _wait_for_launcher(subprocess.Popen(command, env=env))


def _wait_for_launcher(proc) -> int:
    """Wait for the launcher, whose process group the terminal's Ctrl-C and hangup reach too: it
    passes them to the ranks (:mod:`grpo_tui.cli.rank_launcher`), and this process, left alone,
    would end at once and hand the shell back while the run still prints. A SIGTERM sent to this
    process alone goes on to the launcher, which passes it to ranks in sessions of their own
    (several processes); a single process, in the launcher's group, is reached by a SIGTERM sent
    to the group."""
    import signal

    from grpo_tui.model.signals import send_output_to

    def hangup(signum, frame):
        send_output_to(None)  # the terminal is gone; the run's output goes to its console.log

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, lambda signum, frame: None),
                signal.SIGHUP: signal.signal(signal.SIGHUP, hangup),
                signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))}
    try:
        return shell_code(proc.wait())  # (ended by a signal: 128 + the signal)
    finally:
        for signum, handler in previous.items():
            if signum != signal.SIGINT:  # a Ctrl-C pressed as the launcher ended is not a traceback here
                signal.signal(signum, handler)


def _fsdp_setup(args) -> str | None:
    """``--fsdp``: the bundled FSDP2 config over ``--num-processes`` (default every GPU); what
    is wrong, or None."""
    import torch

    from engine.config.schema import REPO_ROOT

    if args.accelerate_config:
        return "--fsdp uses the bundled FSDP config: give either --fsdp or --accelerate-config"
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if args.num_processes is None:
        if gpus < 2:
            return (f"--fsdp shards over several GPUs and this machine has {gpus}: "
                    "give --num-processes N to run N processes anyway")
        args.num_processes = gpus
    if not gpus:
        print("grpo-tui: no GPU here: accelerate runs an FSDP config as data parallel (DDP) on CPU processes",
              file=sys.stderr)
    args.accelerate_config = str(REPO_ROOT / "presets" / "accelerate" / "fsdp.yaml")
    return None


def _accelerate_config_problem(path) -> str | None:
    """What is wrong with an accelerate config file for this trainer, or None."""
    import yaml

    from engine.parallel.distributed import FSDP1_MESSAGE, FSDP_CHECKPOINTING_MESSAGE, UNSUPPORTED, unsupported_message

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        return f"accelerate config {path} not found"
    except yaml.YAMLError as err:
        return f"accelerate config {path} is not valid YAML: {err}"
    if not isinstance(config, dict):
        return f"accelerate config {path} is not a mapping of settings"
    kind = str(config.get("distributed_type", "")).upper()
    if kind in UNSUPPORTED:
        return f"{path}: {unsupported_message(kind)}"
    fsdp = config.get("fsdp_config") or {}
    fsdp = fsdp if isinstance(fsdp, dict) else {}
    if kind == "FSDP" and str(fsdp.get("fsdp_version", 1)) != "2":
        return f"{path}: {FSDP1_MESSAGE}"
    if kind == "FSDP" and fsdp.get("fsdp_activation_checkpointing"):
        return f"{path}: {FSDP_CHECKPOINTING_MESSAGE}"
    return None
