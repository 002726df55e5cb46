"""The ``grpo-tui`` command line.

    grpo-tui                              the launcher (pick a preset, open a run)
    grpo-tui run PRESET                   straight to the dashboard
    grpo-tui train PRESET --headless      no TUI: a progress bar and a summary on stdout
    grpo-tui bench PRESET                 seconds per step, split by phase; throughput; memory
    grpo-tui presets                      the presets found and whether they validate
    grpo-tui fields [PATTERN]             every preset key: its type, default and what it does
    grpo-tui fields --trl [PATTERN]       how each TRL name that is not ours is handled
    grpo-tui train PRESET --detach        train in the background; attach later
    grpo-tui attach RUN_DIR               the dashboard of a run going on in another process
    grpo-tui resume RUN_DIR [--headless]  continue from the newest complete checkpoint
    grpo-tui send RUN_DIR pause|resume|stop|checkpoint|reload-rewards|adjust [KEY=VALUE ...]
    grpo-tui compare RUN_DIR RUN_DIR ...  runs' metrics overlaid by step, and the settings that differ
    grpo-tui runs                         runs and their state (running, paused, finished, stopped, crashed, ...)
    grpo-tui train PRESET --headless --num-processes N   data-parallel over N GPUs (or CPU processes)
    grpo-tui train PRESET --headless --fsdp              sharded (FSDP2) over every GPU
    grpo-tui vllm-serve MODEL             generation on GPUs of its own (presets with vllm_mode: server)

Every command that takes a preset also takes ``--set key=value`` (repeatable, nested keys
with dots), ``--max-steps N`` and ``--output DIR``. A preset with mistakes exits with code 2
and one message listing every problem. ``run``, ``train`` and ``resume`` take ``--on-fault
pause|fail``: what a fault that repeats does (see engine.training.faults); the dashboard and
background runs pause by default, headless runs fail (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys

import shtab  # shell completion (--print-completion)

EXIT_CONFIG = 2


RUN_DIR_HELP = "a run directory (the folder holding its config.yaml, e.g. runs/tiny-arithmetic-20261127-101500)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grpo-tui")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _preset_args(p: argparse.ArgumentParser, max_steps: bool = True) -> None:
    p.add_argument("preset", help="preset name (from presets/) or path to a YAML file").complete = shtab.FILE
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set learning_rate=5e-5 --set dataset.split=test")
    if max_steps:
        p.add_argument("--max-steps", type=int, default=None, help="cap the number of optimizer steps")
    else:
        p.set_defaults(max_steps=None)
    p.add_argument("--output", default=None, metavar="DIR", help="run directory (default runs/<preset>-<timestamp>)")


def _fault_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-fault", choices=["pause", "fail"], default=None,
                   help="when a reward function keeps failing, updates keep going non-finite or memory runs out: "
                        "pause and wait for a fix (default with the dashboard and --detach) or checkpoint and "
                        "exit 1 (default headless)")


def _process_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="data-parallel over N processes (GPUs; CPU processes where there is no GPU) through "
                        "accelerate launch; headless, watch with `grpo-tui attach`")
    p.add_argument("--accelerate-config", default=None, metavar="FILE",
                   help="an accelerate config file (e.g. presets/accelerate/ddp.yaml)")
    p.add_argument("--fsdp", action="store_true",
                   help="shard parameters, gradients and optimizer state with FSDP2 (the bundled "
                        "presets/accelerate/fsdp.yaml) over --num-processes N (default: every GPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-tui", description="Run and watch GRPO fine-tuning in the terminal.")
    parser.add_argument("--version", action="version", version=f"grpo-tui {_version()}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="train a preset with the dashboard")
    _preset_args(p)
    _fault_args(p)

    p = sub.add_parser("train", help="train a preset (dashboard, or --headless)")
    _preset_args(p)
    p.add_argument("--headless", action="store_true", help="no dashboard: progress bar and summary on stdout")
    p.add_argument("--detach", action="store_true",
                   help="train in a background process that outlives the terminal; prints the run directory")
    _fault_args(p)
    _process_args(p)

    p = sub.add_parser("resume", help="continue a run from its newest complete checkpoint")
    p.add_argument("run_dir", help=RUN_DIR_HELP).complete = shtab.DIRECTORY
    p.add_argument("--headless", action="store_true", help="no dashboard: progress bar and summary on stdout")
    p.add_argument("--detach", action="store_true", help="continue in a background process")
    _fault_args(p)
    _process_args(p)

    p = sub.add_parser("attach", help="open the dashboard on a run going on in another process")
    p.add_argument("run_dir", help=RUN_DIR_HELP + ", trained by another process").complete = shtab.DIRECTORY

    p = sub.add_parser("send", help="send a command to a run going on in another process")
    p.add_argument("run_dir", help=RUN_DIR_HELP + ", trained by another process").complete = shtab.DIRECTORY
    p.add_argument("action", choices=["pause", "resume", "stop", "checkpoint", "reload-rewards", "adjust"],
                   help="reload-rewards: re-import the reward plugins from their files at the next step boundary")
    p.add_argument("changes", nargs="*", metavar="KEY=VALUE", help="for adjust: e.g. learning_rate=1e-6 temperature=0.8")

    p = sub.add_parser("runs", help="list runs and their state")
    p.add_argument("--root", default="runs", help="folder holding run directories (default runs/)")

    p = sub.add_parser("bench", help="benchmark a preset: seconds per step by phase, throughput, peak memory")
    _preset_args(p, max_steps=False)
    p.add_argument("--steps", type=int, default=20, help="steps to time (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="first steps left out of the figures (default 3)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also profile the timed steps (torch.profiler) and print the N costliest operations")

    p = sub.add_parser("presets", help="list the presets found and whether they validate")

    p = sub.add_parser("fields", help="list every preset key with its type, default and doc")
    p.add_argument("pattern", nargs="?", default=None,
                   help="show only keys holding this text, or matching it as a glob (e.g. vllm_*, dataset.*)")
    p.add_argument("--trl", action="store_true",
                   help="list how each TRL GRPOConfig / TrainingArguments / recipe key that is not ours is handled")

    p = sub.add_parser("view", help="open a run directory read-only in the dashboard")
    p.add_argument("run_dir", help=RUN_DIR_HELP).complete = shtab.DIRECTORY

    p = sub.add_parser("compare", help="overlay two or more runs' metrics by step and diff their configs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more run directories").complete = shtab.DIRECTORY

    p = sub.add_parser("vllm-serve", help="serve generation on GPUs of their own for runs with vllm_mode: server")
    p.add_argument("model", help="hub id or folder: the policy's starting weights (runs push theirs every step)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; presets name it as vllm_server_port "
                   "(default 8000)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs one copy of the model spans (default 1)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                   help="share of each GPU's memory vLLM may take, weights and KV cache (default 0.9)")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="longest prompt + completion in tokens (default: the model's context)")
    p.add_argument("--dtype", default="auto", help="weights' dtype: auto, bfloat16, float16 (default auto)")
    shtab.add_argument_to(parser, "--print-completion", help="print a shell completion script (bash, zsh or tcsh), "
                          "e.g. grpo-tui --print-completion bash > ~/.local/share/bash-completion/completions/grpo-tui")
    return parser


def _overrides(args) -> list[str]:
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.output is not None:
        overrides.append(f"output_dir={args.output}")
    return overrides


def _load(args):
    """The validated config, or exit 2 with every problem listed."""
    from engine.config.schema import ConfigError
    from engine.config.presets import load_preset

    from engine.training.trainer import RunDirInUse, check_run_dir_free

    try:
        cfg = load_preset(args.preset, _overrides(args))
        if cfg.output_dir:
            check_run_dir_free(cfg.output_dir)
    except (ConfigError, RunDirInUse) as exc:
        print(f"grpo-tui: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    if cfg.dataset.path and cfg.dataset.format != "ranked":  # a bad file is named before a model loads
        from engine.data.file_check import data_file_problem

        problem = data_file_problem(cfg.dataset.path, cfg.dataset.prompt_column)
        if problem:
            print(f"grpo-tui: dataset.path: {problem}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG)
    return cfg


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130


def _dispatch(args) -> int:
    if args.command in ("train", "resume") and (args.num_processes is not None or args.accelerate_config or args.fsdp):
        from grpo_tui.cli.launch import launch_processes

        return launch_processes(args)
    if getattr(args, "detach", False):
        from grpo_tui.cli.launch import detach

        return detach(args)
    if args.command == "runs":
        return _list_runs(args.root)
    if args.command == "send":
        from grpo_tui.cli.send import send

        _check_run_dir(args.run_dir)
        return send(args)
    if args.command == "resume" and "RANK" not in os.environ:  # accelerate's processes: their launch checked
        _check_resumable(args.run_dir)
    if args.command == "resume" and args.headless:
        from grpo_tui.cli.headless import resume_headless

        return resume_headless(args.run_dir, on_fault=args.on_fault or "fail")
    if args.command in ("resume", "attach"):
        from grpo_tui.app import GrpoApp

        _check_run_dir(args.run_dir)
        faults = {"on_fault": args.on_fault} if getattr(args, "on_fault", None) else {}
        app = GrpoApp(**{args.command: args.run_dir}, **faults)
        app.run()
        return int(app.return_code or 0)
    if args.command == "compare":
        return _compare(args.run_dirs)
    if args.command in (None, "run", "view") or (args.command == "train" and not args.headless):
        from grpo_tui.app import GrpoApp

        if args.command is None:
            app = GrpoApp()
        elif args.command == "view":
            _check_run_dir(args.run_dir)  # a missing folder is one line, not an empty launcher
            app = GrpoApp(run_dir=args.run_dir)
        else:
            _load(args)  # fail before the screen opens
            app = GrpoApp(preset=args.preset, overrides=_overrides(args), on_fault=args.on_fault or "pause")
        app.run()
        return int(app.return_code or 0)
    if args.command == "train":
        from grpo_tui.cli.headless import train_headless

        return train_headless(_load(args), on_fault=args.on_fault or "fail")
    if args.command == "bench":
        from grpo_tui.cli.bench import bench

        return bench(_load(args), steps=args.steps, warmup=args.warmup, profile=args.profile)
    if args.command == "presets":
        return _list_presets()
    if args.command == "fields":
        if args.trl:
            from grpo_tui.cli.trl_names import list_trl_names

            return list_trl_names(args.pattern)
        return _list_fields(args.pattern)
    if args.command == "vllm-serve":
        return _vllm_serve(args)
    raise AssertionError(args.command)


def _compare(run_dirs: list[str]) -> int:
    if len(run_dirs) < 2:
        print("grpo-tui: compare needs two or more run directories", file=sys.stderr)
        return EXIT_CONFIG
    for run_dir in run_dirs:
        _check_run_dir(run_dir)
    from grpo_tui.app import GrpoApp

    app = GrpoApp(compare=run_dirs)
    app.run()
    return int(app.return_code or 0)


def _check_run_dir(run_dir: str) -> None:
    from pathlib import Path

    if not (Path(run_dir) / "config.yaml").exists():
        print(f"grpo-tui: {run_dir} is not a run directory (no config.yaml)", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)


def _check_resumable(run_dir: str) -> None:
    """Exit 2 with one line unless the run can be resumed (stopped, abandoned, crashed or
    failed, with a complete checkpoint short of max_steps); else say what resuming redoes."""
    from engine.run.listing import summarize_run

    _check_run_dir(run_dir)
    run = summarize_run(run_dir)
    why = run.resume_problem()
    if why is not None:
        print(f"grpo-tui: {why}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    print(f"{run.name} is {run.state}: {run.resume_plan()}", flush=True)


def _vllm_serve(args) -> int:
    from engine.config.checks import vllm_unavailable

    reason = vllm_unavailable("the server's engine runs on it")
    if reason:
        print(f"grpo-tui: {reason}", file=sys.stderr)
        return EXIT_CONFIG
    from engine.rollout.vllm_server import serve

    serve(args.model, host=args.host, port=args.port, tensor_parallel_size=args.tensor_parallel_size,
          gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len, dtype=args.dtype)
    return 0


def _list_runs(root: str) -> int:
    from engine.run.listing import list_run_summaries

    rows = list_run_summaries(root)
    if not rows:
        print(f"no runs in {root}/")
        return 0
    print(f"{'run':40s} {'state':13s} {'step':>11s}  {'reward':>7s}  model")
    for r in rows:
        reward = f"{r.reward:.3f}" if r.reward is not None else "-"
        print(f"{r.name:40s} {r.state:13s} {r.step:>5d}/{r.max_steps:<5d}  {reward:>7s}  {r.model}")
    return 0


def _list_presets() -> int:
    from engine.config.presets import find_presets

    for info in find_presets():
        status = "ok" if info.ok else f"{len(info.problems)} problem(s)"
        first = (info.description or "").splitlines()[0] if info.description else ""
        print(f"{info.name:28s} {status:14s} {first}")
        for problem in info.problems:
            print(f"    - {problem}")
    return 0


def _list_fields(pattern: str | None, width: int = 80) -> int:
    """Every preset key (or those matching ``pattern``) under its section: the key and its
    ``type = default`` aligned in two columns, the doc wrapped below, all within ``width``."""
    import textwrap

    from engine.config.docs import field_docs, match_fields

    docs = match_fields(pattern)
    if not docs:
        print(f"grpo-tui: no preset key matches {pattern!r} ({len(field_docs())} keys: grpo-tui fields lists them)",
              file=sys.stderr)
        return 1
    wrap = textwrap.TextWrapper(width, break_on_hyphens=False, break_long_words=False)
    column = min(max(len(d.key) for d in docs), 30) + 2
    lines: list[str] = []
    section: str | None = None
    for d in docs:
        if not lines or d.section != section:
            section = d.section
            wrap.initial_indent, wrap.subsequent_indent = "── ", "   "
            lines += ([""] if lines else []) + wrap.wrap(f"{section} ──")
        wrap.initial_indent = d.key.ljust(column) if len(d.key) < column else d.key + "  "
        wrap.subsequent_indent = " " * column
        lines += wrap.wrap(f"{d.type} = {d.default}")
        wrap.initial_indent = wrap.subsequent_indent = "    "
        lines += wrap.wrap(d.doc)
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:  # `grpo-tui fields | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
