import os

if os.environ.get("GRPO_TUI_CONSOLE_LOG"):  # a rank started by grpo-tui's launcher (grpo_tui.cli.rank_launcher)
    from grpo_tui.model.signals import hold_from_start

    hold_from_start()

from grpo_tui.cli.main import main  # noqa: E402

raise SystemExit(main())
