"""``grpo-tui send RUN ACTION [KEY=VALUE ...]``: a command for the process that trains a run,
checked here as the run will check it, so a mistake is one line and exit 2, not a command
file the run discards."""

from __future__ import annotations

import sys

EXIT_CONFIG = 2


def send(args) -> int:
    import yaml

    from engine.run.channel import send_command
    from engine.run.listing import summarize_run

    why = summarize_run(args.run_dir).not_live_reason()
    if why is not None:  # a command file there would lie unread
        print(f"grpo-tui: {why}", file=sys.stderr)
        return EXIT_CONFIG
    changes = {}
    for item in args.changes:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"grpo-tui: expected KEY=VALUE, got {item!r}", file=sys.stderr)
            return EXIT_CONFIG
        changes[key] = yaml.safe_load(value)
    if args.action == "adjust" and not changes:
        print("grpo-tui: adjust needs at least one KEY=VALUE", file=sys.stderr)
        return EXIT_CONFIG
    if changes and args.action != "adjust":
        print(f"grpo-tui: {args.action} takes no KEY=VALUE", file=sys.stderr)
        return EXIT_CONFIG
    if args.action == "adjust":
        changes, problem = _checked_adjustment(args.run_dir, changes)
        if problem:
            print(f"grpo-tui: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        send_command(args.run_dir, args.action.replace("-", "_"), **changes)
    except (OSError, ValueError) as exc:
        print(f"grpo-tui: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"sent {args.action} to {args.run_dir}" + (f": {changes}" if changes else ""))
    return 0


def _checked_adjustment(run_dir: str, changes: dict) -> tuple[dict, str | None]:
    """``changes`` as the run will apply them (coerced: ``2e-5`` is a number), and why the
    run would reject them (checked here as the trainer will: the names it may change, types,
    ranges, the model's context length) in one line, or None."""
    import json
    from pathlib import Path

    from engine.config.checks import validate_adjustment
    from engine.config.presets import config_from_yaml
    from engine.config.schema import ConfigError

    try:
        cfg = config_from_yaml((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"), check_paths=False,
                               source=str(Path(run_dir) / "config.yaml"))
    except (OSError, ConfigError) as exc:
        return changes, f"cannot read the run's config to check the adjustment: {exc}"
    context = None
    try:  # a local model's config.json, when there is one (never a download)
        model_config = json.loads((Path(cfg.model_name_or_path) / "config.json").read_text())
        context = model_config.get("max_position_embeddings") if cfg.model_init != "random" else None
        context = (cfg.model_config_overrides or {}).get("max_position_embeddings", context)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    try:
        return validate_adjustment(cfg, changes, context if isinstance(context, int) else None), None
    except ConfigError as exc:
        return changes, f"adjustment refused: {'; '.join(exc.problems)}"
