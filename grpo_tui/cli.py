"""The ``grpo-tui`` command line.

    grpo-tui                              the launcher (pick a preset, open a run)
    grpo-tui run PRESET                   straight to the dashboard
    grpo-tui train PRESET --headless      no TUI: a progress bar and a summary on stdout
    grpo-tui bench PRESET                 seconds per step, split by phase; throughput; memory
    grpo-tui presets                      the presets found and whether they validate

Every command that takes a preset also takes ``--set key=value`` (repeatable, nested keys
with dots), ``--max-steps N`` and ``--output DIR``. A preset with mistakes exits with code 2
and one message listing every problem.
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_CONFIG = 2


def _preset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", help="preset name (from presets/) or path to a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set learning_rate=5e-5 --set dataset.split=test")
    p.add_argument("--max-steps", type=int, default=None, help="cap the number of optimizer steps")
    p.add_argument("--output", default=None, metavar="DIR", help="run directory (default runs/<preset>-<timestamp>)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-tui", description="Run and watch GRPO fine-tuning in the terminal.")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="train a preset with the dashboard")
    _preset_args(p)

    p = sub.add_parser("train", help="train a preset (dashboard, or --headless)")
    _preset_args(p)
    p.add_argument("--headless", action="store_true", help="no dashboard: progress bar and summary on stdout")

    p = sub.add_parser("bench", help="benchmark a preset: seconds per step by phase, throughput, peak memory")
    _preset_args(p)
    p.add_argument("--steps", type=int, default=20, help="steps to time (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="first steps left out of the figures (default 3)")

    p = sub.add_parser("presets", help="list the presets found and whether they validate")

    p = sub.add_parser("view", help="open a run directory read-only in the dashboard")
    p.add_argument("run_dir")
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
    from engine.config import ConfigError, load_preset

    try:
        return load_preset(args.preset, _overrides(args))
    except ConfigError as exc:
        print(f"grpo-tui: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130


def _dispatch(args) -> int:
    if args.command in (None, "run", "view") or (args.command == "train" and not args.headless):
        from grpo_tui.app import GrpoApp

        if args.command is None:
            app = GrpoApp()
        elif args.command == "view":
            app = GrpoApp(run_dir=args.run_dir)
        else:
            _load(args)  # fail before the screen opens
            app = GrpoApp(preset=args.preset, overrides=_overrides(args))
        app.run()
        return int(app.return_code or 0)
    if args.command == "train":
        from grpo_tui.headless import train_headless

        return train_headless(_load(args))
    if args.command == "bench":
        from grpo_tui.bench import bench

        return bench(_load(args), steps=args.steps, warmup=args.warmup)
    if args.command == "presets":
        return _list_presets()
    raise AssertionError(args.command)


def _list_presets() -> int:
    from engine.config import find_presets

    for info in find_presets():
        status = "ok" if info.ok else f"{len(info.problems)} problem(s)"
        first = (info.description or "").splitlines()[0] if info.description else ""
        print(f"{info.name:28s} {status:14s} {first}")
        for problem in info.problems:
            print(f"    - {problem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
