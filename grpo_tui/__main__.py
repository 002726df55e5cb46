import os

from grpo_tui.cli.rank_launcher import CONSOLE_LOG_ENV

if os.environ.get(CONSOLE_LOG_ENV):  # a rank started by grpo-tui's launcher
    from grpo_tui.model.signals import hold_from_start

    hold_from_start()

from grpo_tui.cli.main import main  # noqa: E402

raise SystemExit(main())
