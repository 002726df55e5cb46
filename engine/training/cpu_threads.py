"""How many intra-op threads torch uses on a CPU, chosen by the work rather than one number.

A model's matrix products are ``hidden_size`` wide. The bundled 1M-parameter model's (128)
are too small to split across threads: there one thread measured 25–30% faster per step
than two on 2 cores, and it leaves a core to the dashboard. A compute-bound model's (a 26M
Llama, hidden 512) are not: there one thread halved the arithmetic rate (17 s a step against
12–13 s with two). So models of :data:`COMPUTE_BOUND_HIDDEN` and wider get every core torch
would use; ``GRPO_TUI_CPU_THREADS`` overrides the choice.
"""

from __future__ import annotations

import os

import torch

ENV = "GRPO_TUI_CPU_THREADS"
COMPUTE_BOUND_HIDDEN = 256
"""The hidden size from which a step is compute-bound enough on a CPU to use every core."""

TORCH_DEFAULT_THREADS = torch.get_num_threads()
"""torch's own choice (the physical cores), read before this process changes it."""

last_choice: tuple[int, str] | None = None
"""The threads the last run on a CPU chose, and why (``grpo-tui bench`` prints it)."""


def choose_cpu_threads(hidden_size: int | None, cores: int, override: str | None = None) -> tuple[int, str]:
    """(threads, why) for a model ``hidden_size`` wide on ``cores`` cores.

        >>> choose_cpu_threads(128, 2)[0], choose_cpu_threads(512, 2)[0], choose_cpu_threads(512, 2, "1")[0]
        (1, 2, 1)
        >>> choose_cpu_threads(512, 8)[1]
        'hidden size 512 ≥ 256: compute-bound, every core (8)'
    """
    if override:
        try:
            return max(1, int(override)), f"{ENV}={override}"
        except ValueError:
            pass  # not a number: chosen as if unset
    if hidden_size is None or hidden_size < COMPUTE_BOUND_HIDDEN:
        size = "unknown" if hidden_size is None else str(hidden_size)
        return 1, f"hidden size {size} < {COMPUTE_BOUND_HIDDEN}: products too small to split; a core left to the dashboard"
    return max(1, cores), f"hidden size {hidden_size} ≥ {COMPUTE_BOUND_HIDDEN}: compute-bound, every core ({cores})"


def set_cpu_threads(device: torch.device, model) -> tuple[int, str]:
    """Set torch's intra-op threads for training ``model`` on ``device`` (CPU only)."""
    global last_choice
    if device.type != "cpu":
        return torch.get_num_threads(), f"on {device.type}: torch's default"
    config = getattr(model, "config", None)
    hidden = getattr(getattr(config, "text_config", None), "hidden_size", None) or getattr(config, "hidden_size", None)
    threads, why = choose_cpu_threads(hidden if isinstance(hidden, int) else None, TORCH_DEFAULT_THREADS,
                                      os.environ.get(ENV))
    torch.set_num_threads(threads)
    last_choice = (torch.get_num_threads(), why)
    return last_choice
