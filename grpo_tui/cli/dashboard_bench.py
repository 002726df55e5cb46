"""How much the dashboard costs training: the same short run headless and under the
dashboard, compared by the engine's own per-step times (setup and evaluation excluded).

    HF_HUB_OFFLINE=1 python -m grpo_tui.cli.dashboard_bench [--steps 60] [--size 200x60]
    HF_HUB_OFFLINE=1 python -m grpo_tui.cli.dashboard_bench --keys-only --preset slow-llama-25m --steps 2

The dashboard runs in Textual's headless driver at the given terminal size, which
renders every frame as a real terminal would (only the final write is skipped).
The target is at most 5% fewer completions per second than headless. ``--keys-only`` skips
the comparison and measures how late a key would be handled in every phase of the run,
loading and the first step included (the target: under 100 ms at any step length).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from engine.config.presets import load_preset
from engine.run.control import Control
from engine.run.events import RunState
from engine.run.rundir import read_jsonl
from engine.training.trainer import Trainer
from grpo_tui.app import GrpoApp


def throughput(run_dir: Path) -> tuple[float, int]:
    """Median completions/s over the training steps (eval steps and the first step skipped)."""
    rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("completions_per_s") and "eval/accuracy" not in r]
    values = [r["completions_per_s"] for r in rows[1:]]
    return statistics.median(values), len(values)


UI_CPU: list[float] = []  # the UI thread's CPU time / wall time, per dashboard run
PROBE_S = 0.05


def overrides(steps: int, out: Path) -> list[str]:
    return [f"max_steps={steps}", "eval_max_samples=16", f"output_dir={out}"]


def headless(preset: str, steps: int, out: Path) -> None:
    """As ``grpo-tui train --headless`` runs it: the engine on its background thread."""
    Trainer(load_preset(preset, overrides(steps, out)), control=Control()).start().join()


def phase_of(model) -> str:
    """The state, or the phase of the step under way, as the header names it."""
    if model is None:
        return "launching"
    current = model.current_progress()
    return f"{model.state}/{current['phase']}" if current else model.state


async def dashboard(preset: str, steps: int, out: Path, size: tuple[int, int],
                    by_phase: dict[str, list[float]] | None = None) -> list[float]:
    """Run under the dashboard; returns the UI loop's lag samples (how late a key would be
    handled) while training. ``by_phase`` collects every sample, loading included, by phase."""
    app = GrpoApp(preset=preset, overrides=overrides(steps, out))
    lags: list[float] = []
    loop = asyncio.get_running_loop()
    cpu0 = wall0 = 0.0

    async def probe() -> None:
        nonlocal cpu0, wall0
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        while True:  # 20 samples a second: enough for a p99, without the probe itself loading the UI thread
            t = loop.time()
            await asyncio.sleep(PROBE_S)
            if by_phase is not None:
                by_phase.setdefault(phase_of(app.live_model), []).append(loop.time() - t - PROBE_S)
            if app.live_model is not None and app.live_model.state == RunState.RUNNING:  # training, not loading
                lags.append(loop.time() - t - PROBE_S)

    async with app.run_test(size=size):
        task = asyncio.create_task(probe())
        while app.live_model is None or not app.live_model.is_terminal:
            await asyncio.sleep(0.2)  # not pilot.pause: it walks every widget, which a user session never does
        task.cancel()
        UI_CPU.append((time.thread_time() - cpu0) / (time.perf_counter() - wall0))
    app.live.thread.join()
    return lags


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as the CLI sets it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny-arithmetic")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--size", default="200x60")
    parser.add_argument("--repeat", type=int, default=4, help="alternating rounds (machine load drifts)")
    parser.add_argument("--keys-only", action="store_true", help="only the UI loop's lag, by phase, in one run")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.keys_only:
        by_phase: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(dashboard(args.preset, args.steps, Path(tmp) / "run", size, by_phase))
        print(f"preset {args.preset}, {args.steps} steps, dashboard at {size[0]}x{size[1]}: "
              "UI loop lag (time a key waits) by phase")
        for phase, values in by_phase.items():
            values.sort()
            print(f"  {phase:22} {len(values):5} samples  p50 {values[len(values) // 2] * 1000:5.0f} ms  "
                  f"p99 {values[int(len(values) * 0.99)] * 1000:5.0f} ms  max {values[-1] * 1000:5.0f} ms")
        return
    results: dict[str, list[float]] = {"headless": [], "dashboard": []}
    lags: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            headless(args.preset, args.steps, Path(tmp) / f"headless-{r}")
            results["headless"].append(throughput(Path(tmp) / f"headless-{r}")[0])
            lags += asyncio.run(dashboard(args.preset, args.steps, Path(tmp) / f"dashboard-{r}", size))
            results["dashboard"].append(throughput(Path(tmp) / f"dashboard-{r}")[0])
    print(f"preset {args.preset}, {args.steps} steps x {args.repeat} alternating rounds, dashboard at {size[0]}x{size[1]}")
    for name, values in results.items():
        print(f"{name:9}: {statistics.median(values):8.1f} completions/s  (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    h, d = statistics.median(results["headless"]), statistics.median(results["dashboard"])
    paired = [1 - dv / hv for hv, dv in zip(results["headless"], results["dashboard"])]
    print(f"overhead : {100 * (1 - d / h):+.1f}% of medians, {100 * statistics.median(paired):+.1f}% median of "
          f"paired rounds ({', '.join(f'{100 * p:+.0f}%' for p in paired)})  (target <= 5%)")
    print(f"UI thread CPU while training: {100 * statistics.median(UI_CPU):.1f}% of one core")
    lags.sort()
    p50, p99 = lags[len(lags) // 2], lags[int(len(lags) * 0.99)]
    print(f"UI loop lag while training (time a key waits): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {lags[-1] * 1000:.0f} ms  (target < 100 ms)")


if __name__ == "__main__":
    main()
