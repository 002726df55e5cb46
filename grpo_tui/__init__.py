"""grpo-tui: a terminal dashboard that runs and watches GRPO fine-tuning.

The engine is the top-level package ``engine`` (the project's layout). A common name: a
module called ``engine`` in the folder a user works in (``engine.py``, a project's
``engine/``) would shadow it under ``python -m grpo_tui`` or in a script. Importing
``grpo_tui`` first makes ``engine`` this distribution's, whatever is in the working folder,
and ``grpo_tui.api`` is the Python API under a name nothing else has.
"""

from __future__ import annotations


def _own_engine() -> None:
    import importlib.util
    import sys
    from pathlib import Path

    home = Path(__file__).resolve().parent.parent  # the folder holding grpo_tui/ and engine/

    def ours(origin) -> bool:
        return origin is not None and Path(origin).resolve().parent.parent == home

    loaded = sys.modules.get("engine")
    if loaded is not None:
        if not ours(getattr(loaded, "__file__", None)):
            raise ImportError(f"a module named 'engine' ({getattr(loaded, '__file__', loaded)!s}) was imported before "
                              "grpo_tui and hides grpo-tui's engine: import grpo_tui (or grpo_tui.api) first, or "
                              "rename that module")
        return
    spec = importlib.util.find_spec("engine")
    if spec is None or not ours(spec.origin):
        sys.path.insert(0, str(home))
        importlib.invalidate_caches()


_own_engine()
