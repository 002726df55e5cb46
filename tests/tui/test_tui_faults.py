"""A reward plugin that fails under the dashboard: the run pauses and says why, the user
fixes the file, reloads it (R) and resumes (p), and the rewards come back (Pilot, real engine)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from conftest import write, wait_for
from grpo_tui.app import GrpoApp
from grpo_tui.screens.dashboard import DashboardScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BROKEN = "def scorer(prompts, completions, **kwargs):\n    raise ZeroDivisionError('division by zero')\n"
FIXED = "def scorer(prompts, completions, **kwargs):\n    return [float(len(c) % 2) for c in completions]\n"



def test_dashboard_pauses_on_a_failing_plugin_and_resumes_with_the_fixed_file(tmp_path: Path) -> None:
    asyncio.run(_pause_fix_resume(tmp_path))


async def _pause_fix_resume(tmp_path: Path) -> None:
    plugin = write(tmp_path / "plugins" / "my_reward.py", BROKEN)
    app = GrpoApp(preset="tiny-arithmetic", overrides=[
        "per_device_train_batch_size=16", "eval_max_samples=8", "eval_steps=0", "log_completions_groups=1",
        "max_steps=5000", f"output_dir={tmp_path / 'run'}", f"reward_funcs=['{plugin}:scorer']"])
    async with app.run_test(size=(120, 40)) as pilot:
        model = app.live_model
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: model.state == "paused", "the pause on the fault")
        assert any(e.kind == "fault" and "reward function scorer failed on 3 steps" in e.message for e in model.events)
        rewards = model.series["reward"]
        assert all(math.isnan(v) for v in rewards.values)  # missing, not 0
        status = app.screen.query_one("#status")  # redrawn on the dashboard's next tick
        await wait_for(pilot, lambda: "reward —" in str(status.render()) or "R —" in str(status.render()),
                       "the header to show the missing reward")
        # the reason is in the header, on every tab, not only in the events
        await pilot.press("2")
        header = status.render_text(1.0).plain.splitlines()
        assert header[2].startswith("paused at step 3 by a fault: reward function scorer failed on 3 steps"), header
        assert header[3].startswith("fix the reward function"), header
        await pilot.press("1")

        plugin.write_text(FIXED)
        await pilot.press("R")  # reload on demand: applied while paused, at the step boundary
        await wait_for(pilot, lambda: any(e.kind == "reward_reload" for e in model.events), "the reload event")
        assert "reloaded from" in next(e for e in model.events if e.kind == "reward_reload").message
        paused_at = model.step
        await pilot.press("p")  # resume
        await wait_for(pilot, lambda: model.step >= paused_at + 2, "steps after the resume")
        later = [v for s, v in zip(rewards.steps, rewards.values) if s > paused_at]
        assert later and all(math.isfinite(v) for v in later)

        app.live.control.stop()
        await wait_for(pilot, lambda: model.is_terminal, "the run to stop")
        assert "fault" not in model.summary
