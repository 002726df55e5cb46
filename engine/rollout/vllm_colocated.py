"""Generation with vLLM, colocated in the training process (``use_vllm: true``).

Each training process hosts its own engine on its GPU (``distributed_executor_backend=
"external_launcher"``: the engine joins the ranks accelerate already started, so tensor
parallel groups are made of training ranks). After every optimizer step the trainer's
weights are pushed into the engine (``sync_weights``) so it always samples from the current
policy. The engine returns each sampled token's log-prob after temperature
(``logprobs_mode="processed_logprobs"``): the trainer compares them with its own to correct
for the two engines' numerical differences (``vllm_importance_sampling_correction``).

Nothing here is imported unless a preset asks for vLLM; ``engine.config.checks.vllm_problems``
says beforehand why a machine cannot run it.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

import torch

from engine.rollout.backend import Rollout, SamplingParams, rollout_from_lists
from engine.parallel.sharding import full_weights


def vllm_sampling_params(params: SamplingParams, n: int, eos_ids: list[int], seed: int | None):
    """Our sampling options in vLLM's terms (greedy = temperature 0; top_k 0 = off), with
    ``generation_kwargs``' other keys (``params.extra``) added as TRL passes them."""
    from vllm import SamplingParams as VllmSamplingParams

    return VllmSamplingParams(
        n=n,
        temperature=0.0 if params.greedy else params.temperature,
        top_p=1.0 if params.greedy else params.top_p,
        top_k=params.top_k if params.top_k and params.top_k > 0 and not params.greedy else -1,
        min_p=0.0 if params.greedy or params.min_p is None else params.min_p,
        repetition_penalty=params.repetition_penalty,
        max_tokens=params.max_new_tokens,
        stop_token_ids=list(eos_ids),
        logprobs=0,  # the sampled token's own log-prob
        seed=seed,
        **params.extra,
    )


def checkpoint_name(peft_name: str) -> str | None:
    """A LoRA-wrapped parameter's name in the plain architecture, or None for what the engine
    must not receive (the adapter's own matrices, the frozen copy of a ``modules_to_save`` module).

    ``model.layers.0.q_proj.base_layer.weight`` → ``model.layers.0.q_proj.weight``;
    ``lm_head.modules_to_save.default.weight`` (the trained copy) → ``lm_head.weight``."""
    if "lora_" in peft_name or "original_module" in peft_name:
        return None
    return peft_name.replace(".base_layer", "").replace("modules_to_save.default.", "")


@contextmanager
def merged_weights(model: torch.nn.Module):
    """``[(name, tensor)]`` of the full model under its checkpoint names, valid inside the
    ``with`` block — a LoRA adapter is merged into the base weights until the block ends (the
    engine serves the plain architecture), so send or copy them there."""
    if hasattr(model, "merge_adapter") and hasattr(model, "base_model"):
        model.merge_adapter()
        try:
            named = ((checkpoint_name(n), p.data) for n, p in model.base_model.model.named_parameters())
            yield [(name, tensor) for name, tensor in named if name is not None]
        finally:
            model.unmerge_adapter()
    else:
        yield [(name, param.data) for name, param in model.named_parameters()]


class VllmRollout:
    """The rollout backend interface (see engine.rollout.backend) on a colocated vLLM engine."""

    separate_engine = True  # its log-probs come from other kernels than the trainer's: correct for it

    def __init__(self, model: torch.nn.Module, pad_id: int, eos_ids: list[int], *, cfg, rank: int = 0,
                 local_rank: int = 0, world: int = 1) -> None:
        from vllm import LLM

        tp = cfg.vllm_tensor_parallel_size
        if world % tp:
            raise ValueError(f"vllm_tensor_parallel_size ({tp}) must divide the number of processes ({world})")
        self.model = model
        self.pad_id = pad_id
        self.eos_ids = list(eos_ids)
        self.sleep = cfg.vllm_enable_sleep_mode
        self.tp = tp
        self.tp_group = None
        self.collective = tp > 1  # generate() is called by a tensor-parallel group's processes together
        if tp > 1:  # ranks [0..tp-1], [tp..2tp-1], …: each group samples the prompts of all its ranks
            self.tp_group, _ = torch.distributed.new_subgroups_by_enumeration(
                [list(range(i * tp, (i + 1) * tp)) for i in range(world // tp)])
        # the engine joins the process group accelerate started (or makes a one-process one)
        os.environ.setdefault("RANK", str(rank))
        os.environ.setdefault("LOCAL_RANK", str(local_rank))
        os.environ.setdefault("WORLD_SIZE", str(world))
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process: weights reachable
        max_len = cfg.vllm_max_model_length or ((cfg.max_prompt_length or 2048) + cfg.max_completion_length)
        self.llm = LLM(
            model=getattr(model, "name_or_path", None) or cfg.model_name_or_path,
            tokenizer=cfg.model_name_or_path,
            tensor_parallel_size=tp,
            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            max_model_len=max_len,
            enable_sleep_mode=self.sleep,
            distributed_executor_backend="external_launcher",
            seed=cfg.seed + rank // tp,  # the ranks of a TP group must sample alike
            logprobs_mode="processed_logprobs",
            enable_prefix_caching=True,  # the G rows of a group share their prompt
            dtype=_vllm_dtype(model),
        )
        self.weights_asleep = False
        if self.sleep:
            self.llm.sleep(level=2)
            self.weights_asleep = True

    # ------------------------------------------------------------------ interface
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Push the trainer's weights into the engine (after every optimizer step)."""
        self.model = model
        if self.sleep:
            self.llm.wake_up(tags=["weights"])
            self.weights_asleep = False
        engine_model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        # sharded (FSDP): gathered whole for the push, on every rank (all call this at the same points)
        with torch.no_grad(), full_weights(model), merged_weights(model) as weights:
            engine_model.load_weights(weights)
        self.llm.reset_prefix_cache()  # cached prompt keys/values came from the old weights

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], num_generations: int, params: SamplingParams,
                 generator: torch.Generator | None = None) -> Rollout:
        if self.weights_asleep:
            self.sync_weights(self.model)
        # the ranks of a tensor-parallel group must sample alike: their engines share a seed, so
        # no per-request seed there (ranks' generators differ)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)) \
            if generator is not None and self.tp == 1 else None
        prompts = self._tp_gather(prompt_ids)
        with self._awake():
            outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts],
                                        sampling_params=vllm_sampling_params(params, num_generations, self.eos_ids, seed),
                                        use_tqdm=False)
        rows = [(list(out.prompt_token_ids), c) for out in outputs for c in out.outputs]
        rows = self._tp_slice(rows, len(prompt_ids) * num_generations)
        if not rows:  # a tool round in which this process has no episode left (its group's others do)
            return None
        finished = [completion_row(*_tokens_and_logps(c), c.finish_reason, self.eos_ids, params.max_new_tokens)
                     for _, c in rows]
        tokens, logps, truncated = (list(column) for column in zip(*finished))
        device = next(self.model.parameters()).device
        return rollout_from_lists([p for p, _ in rows], tokens, truncated, self.pad_id, device, logps)

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def _awake(self):
        if self.sleep:
            self.llm.wake_up(tags=["kv_cache"])
        try:
            yield
        finally:
            if self.sleep:
                self.llm.sleep(level=2)
                self.weights_asleep = True

    def _tp_gather(self, prompt_ids: list[list[int]]) -> list[list[int]]:
        if self.tp_group is None:
            return prompt_ids
        parts: list = [None] * self.tp
        torch.distributed.all_gather_object(parts, prompt_ids, group=self.tp_group)
        return [p for part in parts for p in part]

    def _tp_slice(self, rows: list, n_local: int) -> list:
        if self.tp_group is None:
            return rows
        i = torch.distributed.get_rank(group=self.tp_group)
        return rows[i * n_local : (i + 1) * n_local]


def completion_row(tokens: list[int], logps: list[float], finish_reason: str | None, eos_ids: list[int],
                   max_new_tokens: int) -> tuple[list[int], list[float], bool]:
    """One finished completion as the trainer wants it: ``(tokens, logps, truncated)`` with the
    EOS that ended it among its tokens (its sampling log-prob unknown: NaN, no correction)."""
    ends_in_eos = bool(tokens) and tokens[-1] in eos_ids
    if finish_reason == "stop" and not ends_in_eos and len(tokens) < max_new_tokens:
        tokens, logps = tokens + [eos_ids[0]], logps + [math.nan]
    return tokens, logps, finish_reason == "length"


def _tokens_and_logps(completion) -> tuple[list[int], list[float]]:
    tokens = list(completion.token_ids)
    logps = []
    for token, options in zip(tokens, completion.logprobs or [None] * len(tokens)):
        entry = options.get(token) if options else None
        logps.append(float(entry.logprob) if entry is not None else math.nan)
    return tokens, logps


def _vllm_dtype(model: torch.nn.Module) -> str:
    dtype = next(model.parameters()).dtype
    return {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32" if dtype == torch.float32 else "auto")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_vllm_backend(cfg, model, pad_id: int, eos_ids: list[int], dist) -> VllmRollout:
    """The vLLM backend the config asks for, or a clear error why not."""
    from engine.config.schema import ConfigError
    from engine.config.checks import vllm_problems

    problems = vllm_problems(cfg.vllm_mode)
    if problems:
        raise ConfigError(problems, source="use_vllm")
    if cfg.vllm_mode == "server":
        from engine.rollout.vllm_server import VllmServerRollout

        return VllmServerRollout(model, pad_id, eos_ids, cfg=cfg, dist=dist)
    local_rank = int(os.environ.get("LOCAL_RANK", dist.rank))
    return VllmRollout(model, pad_id, eos_ids, cfg=cfg, rank=dist.rank, local_rank=local_rank, world=dist.world)
