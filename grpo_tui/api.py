"""The Python API, shaped like TRL's (``GRPOConfig``, ``GRPOTrainer``), under a name that no
other package has: ``from grpo_tui.api import GRPOConfig, GRPOTrainer``. The same objects as
``engine.api``'s."""

from engine.api import *  # noqa: F401,F403
from engine.api import __all__  # noqa: F401
