"""``grpo-tui bench``: what a step costs, by phase, for any preset and batch geometry.

A benchmark, not a test: it prints figures. Evaluation is switched off so only training
steps are timed; the first ``warmup`` steps are left out of the medians.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
from dataclasses import replace

import torch

from engine.training import cpu_threads
from grpo_tui.cli import flops

from engine.run.control import Control

from engine.run.events import RunFailed, StepMetrics
from engine.training.trainer import Trainer

PHASES = ("time/generate", "time/reward", "time/update")


def _median(records: list[dict], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return statistics.median(values) if values else float("nan")


def per_step(records: list[dict], key: str, cycle: int) -> float:
    """A step's seconds of ``key``: the median over the timed steps when every step generates its
    own completions, else (a round feeds ``cycle`` steps, and only its first generates) the mean
    over whole rounds.

    >>> per_step([{"t": 9.0}, {"t": 0.0}, {"t": 11.0}, {"t": 0.0}], "t", 2)
    5.0
    >>> per_step([{"t": 9.0}, {"t": 1.0}, {"t": 11.0}], "t", 1)
    9.0
    """
    if cycle == 1:
        return _median(records, key)
    values = [r[key] for r in records if key in r]
    return statistics.fmean(values) if values else float("nan")


def round_cycle(cfg) -> tuple[int, int]:
    """``(steps, rows)``: the optimizer steps one generation round feeds (its steps times μ) and
    the completions it generates at once, on one process."""
    from engine.training.geometry import RoundGeometry

    g = RoundGeometry.of(cfg, 1)
    return g.steps_per_round * g.num_iterations, g.round_size


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (psutil's where ``resource`` is missing: Windows)."""
    try:
        import resource  # POSIX only
    except ImportError:
        import psutil

        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def arithmetic_lines(trainer, cfg, timed: list[dict], rows: int) -> list[str]:
    """Per phase: the FLOPs the step's matrix products do (counted from the model's shapes and
    the tokens processed, :mod:`grpo_tui.cli.flops`), the rate achieved, and its share of this
    machine's matmul peak (measured now, in the dtype the run computes in); and the step's
    arithmetic floor: its FLOPs at that peak. A round that feeds several steps counts a step's
    share of its generation; decoding runs at the round's width."""
    cycle, round_rows = round_cycle(cfg)
    parts = trainer.parts
    config = getattr(parts.model, "config", None) if parts is not None else None
    if config is None or not hasattr(config, "intermediate_size"):
        return []
    shape = flops.Shape.of(config)
    sample = parts.data.train[:64]
    prompt_len = statistics.mean(len(parts.renderer.ids(r["prompt"])) for r in sample) if sample else 0.0
    new_tokens = _median(timed, "completions/mean_length")
    reused = cfg.num_iterations > 1 or (cfg.steps_per_generation or cfg.gradient_accumulation_steps) > \
        cfg.gradient_accumulation_steps
    # At β = 0 with one update per round, groups whose rewards are all equal are left out of the
    # update (their gradient is exactly zero): count the completions it computed.
    skips = cfg.beta == 0 and not reused and not cfg.use_vllm and cfg.top_entropy_quantile >= 1.0
    flat = _median(timed, "frac_group_reward_zero_std") if skips else 0.0
    updated = rows * (1 - (0.0 if math.isnan(flat) else flat))
    # A step's share of its round: the round generates round_rows completions for ``cycle`` steps
    # (μ passes over the round, each step one pass over its own rows).
    work = {
        "time/generate": flops.generation_flops(shape, round_rows // cfg.num_generations, prompt_len, round_rows,
                                                new_tokens) / cycle,
        "time/update": flops.update_flops(shape, updated, prompt_len, new_tokens, 1),
    }
    # the reference's forward (β > 0) and the sampling policy's (a reused round) run once a round
    # between the two phases, in the step's time but in neither phase's
    between = flops.reference_flops(shape, round_rows, prompt_len, new_tokens,
                                    int(cfg.beta > 0) + int(reused)) / cycle
    dtype = torch.bfloat16 if parts.use_bf16 else torch.float32
    used = torch.get_num_threads()
    size = 4096 if parts.device.type == "cuda" else 1024
    peak_used = flops.matmul_peak(parts.device, dtype, size=size)
    peak, cores = peak_used, used
    if parts.device.type == "cpu" and (os.cpu_count() or 1) > used:  # the machine's peak: every core
        cores = os.cpu_count() or 1
        torch.set_num_threads(cores)
        try:
            peak = flops.matmul_peak(parts.device, dtype)
        finally:
            torch.set_num_threads(used)
    where = f"{cores} threads" if parts.device.type == "cpu" else str(parts.device)
    lines = [f"matmul peak   {peak / 1e9:.0f} GFLOP/s ({str(dtype).removeprefix('torch.')}, {where}, measured now)"
             + (f"; {peak_used / 1e9:.0f} with the run's {used}" if cores != used else ""),
             f"shape         hidden {shape.hidden}, {shape.layers} layers, MLP {shape.intermediate}, vocab {shape.vocab};"
             f" prompts {prompt_len:.0f} tokens, completions {new_tokens:.0f}",
             f"update rows   {updated:.0f} of {rows} completions"
             + (" (groups without reward spread are left out at β = 0)" if updated < rows else "")]
    for phase, amount in work.items():
        seconds = per_step(timed, phase, cycle)
        rate = amount / seconds if seconds > 0 else float("nan")
        lines.append(f"{phase:13s} {amount / 1e9:.1f} GFLOP  {rate / 1e9:.0f} GFLOP/s  {rate / peak:.0%} of peak")
    if between:
        lines.append(f"log-prob fwd  {between / 1e9:.1f} GFLOP (reference or sampling policy, between the phases)")
    gen_s = per_step(timed, "time/generate", cycle)
    if parts.device.type == "cpu":
        lines.append(decode_products_line(parts.model, round_rows, peak, work["time/generate"], gen_s))
    floor = (sum(work.values()) + between) / peak
    step_s = per_step(timed, "step_time", cycle)
    lines.append(f"floor         {floor:.3f} s/step at the matmul peak; this step is {step_s / floor:.1f}× it")
    if parts.device.type == "cuda":  # a round's decoding: its rows, its seconds
        lines += _decode_roofline(parts, shape, round_rows, prompt_len, new_tokens, gen_s * cycle)
        mfu = work["time/update"] / per_step(timed, "time/update", cycle) / peak
        lines.append(f"MFU (update)  {mfu:.0%} of the measured {str(dtype).removeprefix('torch.')} matmul peak")
    return lines


def decode_products_line(model, rows: int, peak: float, gen_flops: float, gen_s: float) -> str:
    """What decoding's matrix products can reach at the batch's width (:func:`flops.decode_product_rate`,
    measured now with the run's threads), and generation's share of it."""
    rate = flops.decode_product_rate(model, rows)
    gen_rate = gen_flops / gen_s if gen_s > 0 else float("nan")
    return (f"decode limit  {rate / 1e9:.0f} GFLOP/s: this model's products for {rows} rows, one token each "
            f"({rate / peak:.0%} of peak); generation reaches {gen_rate / rate:.0%} of it")


def _decode_roofline(parts, shape, rows: int, prompt_len: float, new_tokens: float, gen_s: float) -> list[str]:
    """Decoding against the memory-bandwidth roofline: each step reads the weights and the
    key/value cache once, at the device's measured copy bandwidth."""
    weights = sum(p.numel() * p.element_size() for p in parts.model.parameters())
    bandwidth = flops.copy_bandwidth(parts.device)
    step_bytes = flops.decode_bytes(weights, shape, rows, prompt_len + new_tokens / 2)
    step_s = gen_s / max(new_tokens, 1)
    ideal = step_bytes / bandwidth
    return [f"bandwidth     {bandwidth / 1e9:.0f} GB/s (copy, measured now); weights {weights / 2**30:.2f} GiB",
            f"decode        {step_s * 1e3:.1f} ms/token-step for {rows} rows; roofline {ideal * 1e3:.2f} ms "
            f"({step_s / ideal:.1f}× it); {rows * new_tokens / gen_s:.0f} tokens/s"]


def decoding(trainer) -> str:
    """Which decoding loop made the completions, in words."""
    backend = trainer.parts.backend
    uses_static = getattr(backend, "uses_static_cache", None)
    if uses_static is None:
        return type(backend).__name__
    if not uses_static(trainer.device):
        return "transformers, dynamic KV cache (rows of a group share their common prefix)"
    state = backend.static
    if trainer.device.type != "cuda":
        return "transformers, static KV cache"
    if state is not None and state.graph_error:
        return f"transformers, static KV cache, steps uncaptured ({state.graph_error})"
    return f"transformers, static KV cache, {len(state.graphs) if state else 0} CUDA graphs"


def bench(cfg, steps: int = 20, warmup: int = 3, out=sys.stdout, profile: int = 0) -> int:
    cycle, round_rows = round_cycle(cfg)
    steps, warmup = -(-steps // cycle) * cycle, -(-warmup // cycle) * cycle  # whole rounds
    cfg = replace(cfg, max_steps=steps + warmup, save_steps=0, eval_steps=0, log_completions_groups=0)
    records: list[dict] = []
    failed: list[str] = []
    control = Control()
    profiler = Profiler(warmup, warmup + steps) if profile else None

    def on_step(event) -> None:
        if isinstance(event, StepMetrics):
            records.append(event.metrics)
            if profiler is not None:
                profiler.after_step(len(records))

    control.subscribe(on_step)
    if profiler is not None:
        profiler.after_step(0)
    control.subscribe(lambda e: failed.append(e.error) if isinstance(e, RunFailed) else None)
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        trainer = Trainer(cfg, control=control, run_dir=tmp, evaluate=False)
        trainer.run()
    if failed:
        print(f"grpo-tui: bench failed: {failed[0]}", file=sys.stderr)
        return 1
    timed = records[warmup:] or records
    n_completions = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    step_s = per_step(timed, "step_time", cycle)
    tokens = [r["completions/mean_length"] * n_completions for r in timed]
    how = "median" if cycle == 1 else "mean  "
    lines = [
        f"preset        {cfg.run_name}  model {cfg.model_name_or_path}",
        f"geometry      {n_completions // cfg.num_generations} prompts × {cfg.num_generations} generations = "
        f"{n_completions} completions/step, max {cfg.max_completion_length} new tokens, "
        f"{cfg.gradient_accumulation_steps} micro-batch(es)",
        f"device        {trainer.device}  torch {torch.__version__}  threads {torch.get_num_threads()}"
        + (f" ({cpu_threads.last_choice[1]})" if trainer.device.type == "cpu" and cpu_threads.last_choice else ""),
        f"generation    {decoding(trainer)}",
        f"steps timed   {len(timed)} (after {min(warmup, len(records))} warm-up)"
        + (f"; rounds of {round_rows} completions, each feeding {cycle} steps" if cycle > 1 else ""),
        f"s/step        {how} {step_s:.4f}  (min {min(r['step_time'] for r in timed):.4f}, "
        f"max {max(r['step_time'] for r in timed):.4f})",
        f"steps/s       {1 / step_s:.2f}",
    ]
    for phase in PHASES:
        lines.append(f"{phase:13s} {how} {per_step(timed, phase, cycle):.4f} s")
    lines += arithmetic_lines(trainer, cfg, timed, n_completions)
    lines += [
        f"completions/s {n_completions / step_s:.0f}",
        f"tokens/s      {statistics.median(tokens) / step_s:.0f} generated",
        f"peak RSS      {peak_rss_mib():.0f} MiB",
    ]
    if torch.cuda.is_available():
        lines.append(f"peak GPU mem  {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print("\n".join(lines), file=out)
    if profiler is not None:
        print(profiler.table(profile), file=out)
    return 0


class Profiler:
    """torch.profiler over the timed steps only: from the end of the warm-up to the last step."""

    def __init__(self, warmup: int, last: int) -> None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self.warmup, self.last = warmup, last
        self.prof, self.running = torch.profiler.profile(activities=activities), False

    def after_step(self, done: int) -> None:
        if done == self.warmup and not self.running:
            self.prof.start()
            self.running = True
        elif done == self.last and self.running:
            self.prof.stop()
            self.running = False

    def table(self, rows: int) -> str:
        if self.running:
            self.prof.stop()
            self.running = False
        sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        return f"profile of the timed steps, by {sort}:\n" + self.prof.key_averages().table(sort_by=sort,
                                                                                              row_limit=rows)
