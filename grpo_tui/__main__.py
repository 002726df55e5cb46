from grpo_tui.cli import main

raise SystemExit(main())
