"""What a run trains with, built once before the first step: :func:`setup` → :class:`RunParts`.

The order of construction is part of a run's reproducibility: loading a model, building
reward functions or an optimizer may draw from the global random streams, so a seeded run
samples the same completions only if everything is built in the same order each time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from engine.agents.agent import Agent, load_spec
from engine.agents.custom_rollout import CustomRollout
from engine.config.schema import RunConfig
from engine.config.trl_mapping import resolved_max_steps
from engine.training.cpu_threads import set_cpu_threads
from engine.data.prompts import BatchOrder, PromptData, PromptRenderer, load_prompt_data
from engine.parallel.sharding import full_weights, is_sharded
from engine.rewards.scoring import RewardFunction, build_reward_funcs
from engine.rollout.backend import TransformersRollout
from engine.run.reporting import make_reporters
from engine.training.model_loading import (
    eos_token_ids,
    load_model_and_tokenizer,
    load_reference_model,
    load_tokenizer,
    mixed_precision,
    pick_device,
    prepare_layers,
)
from engine.training.optimizers import make_optimizer, make_scheduler


@dataclass
class Given:
    """Objects the Python API hands in, used instead of what the config would load (a
    notebook's model, tokenizer, reward callables, prompts, reference model)."""

    model: Any = None
    tokenizer: Any = None
    reward_funcs: list | None = None
    data: PromptData | None = None
    ref_model: Any = None
    rollout_backend: Callable | None = None  # (model, pad_id, eos_ids) -> a rollout backend
    tools: list | None = None  # tool callables (TRL's tools=)
    environment_factory: Any = None  # a factory or {name: factory} (TRL's environment_factory=)
    rollout_func: Callable | None = None  # TRL's rollout_func=: (prompts, trainer) -> dict


@dataclass
class RunParts:
    """Everything a run trains with; built by :func:`setup`."""

    given: Given
    device: torch.device
    model: Any  # the policy
    tokenizer: Any
    ref_model: Any  # the frozen reference for the KL term: None with β = 0 (until β is raised) or LoRA
    use_bf16: bool  # forward passes under bfloat16 autocast
    data: PromptData
    renderer: PromptRenderer
    reward_funcs: list
    reward_names: list[str]
    reward_weights: torch.Tensor  # adjustable while the run goes on
    eos_ids: list[int]
    train_model: Any  # the policy as trained: DDP around it, or the model itself (alone, FSDP2)
    optimizer: torch.optim.Optimizer
    sharded: bool  # FSDP2 shards the model in place
    backend: Any  # generates completions (engine.rollout.backend.RolloutBackend)
    separate_engine: bool  # the backend samples with weights of its own (vLLM)
    sampling_gen: torch.Generator  # this process's sampling stream
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ranked: bool  # ranked groups: given responses and ranks, nothing generated or scored
    agent: Any = None  # engine.agents.agent.Agent: tools and environments make each round episodes
    rollout_func: Any = None  # engine.agents.custom_rollout.CustomRollout: the user's function makes each round
    max_model_len: int | None = None  # the model's context (episodes stop before it)

    def weights_for_sampling(self, alone: bool = False):
        """Sharded: the whole weights gathered on every rank while the model itself samples (or
        runs on one rank ``alone``); not when another engine samples. A no-op unsharded."""
        if self.sharded and (alone or not self.separate_engine):
            return full_weights(self.model)
        return contextlib.nullcontext()

    def reference(self, cfg: RunConfig):
        """Load the frozen reference (β raised above 0 while running)."""
        return load_reference(cfg, self.given, self.device, self.model)


def load_reference(cfg: RunConfig, given: Given, device: torch.device, model):
    """The frozen reference for the KL term: the one handed in (Python API), none with LoRA
    (the policy with its adapter off is the reference), a copy of a model object handed in,
    or the starting weights loaded from ``model_name_or_path``."""
    if given.ref_model is not None:
        ref = given.ref_model.to(device).eval()
        ref.requires_grad_(False)
        return ref
    if cfg.peft is not None:
        return None
    return load_reference_model(cfg, device, model if given.model is not None else None)


def sampling_generator(device: torch.device, seed: int) -> torch.Generator:
    """This process's sampling stream, on the device the sampling runs on (``torch.multinomial``
    on CUDA takes only a CUDA generator)."""
    return torch.Generator(device=device).manual_seed(seed)


def setup(cfg: RunConfig, given: Given, dist, run_dir: Path, resume_from: Path | None, state,
          reporters: list, subscribe: Callable) -> RunParts:
    """Load and build everything a run trains with, in a fixed order. Sets ``state.order``
    (the data order). ``reporters`` receives the integrations ``cfg`` asks for (rank 0), each
    passed to ``subscribe`` as soon as it exists, so the caller closes them even when a later
    part fails to load."""
    hf_logging.disable_progress_bar()
    # the data first: a bad file is named before minutes go into loading a model
    data = given.data or load_prompt_data(cfg.dataset, seed=cfg.seed)
    cfg.max_steps = resolved_max_steps(cfg, len(data.train))  # max_steps -1: TRL's epochs, from the dataset size
    torch.manual_seed(cfg.seed)
    device = pick_device()
    if given.model is not None:
        model = given.model.to(device)
        prepare_layers(model, cfg)  # TRL's layer options apply to a model handed in too
        tokenizer = given.tokenizer or load_tokenizer(model.name_or_path)
    else:
        model, tokenizer = load_model_and_tokenizer(cfg, device, path=resume_from)
    set_cpu_threads(device, model)  # by the model's width: one thread for a tiny model, every core for a wide one
    ref_model = load_reference(cfg, given, device, model) if cfg.beta > 0 else None
    use_bf16 = mixed_precision(cfg.bf16, device, model)
    renderer = PromptRenderer(tokenizer, system_prompt=cfg.dataset.system_prompt,
                              chat_template=cfg.dataset.chat_template, max_prompt_length=cfg.max_prompt_length,
                              chat_template_kwargs=cfg.chat_template_kwargs)
    state.order = BatchOrder(len(data.train), cfg.seed, cfg.dataset.shuffle)
    ranked = cfg.dataset.format == "ranked"
    # ranked groups bring their rewards (the ranks) with them: no reward functions run
    specs = given.reward_funcs or cfg.reward_funcs
    reward_funcs = [] if ranked or not specs else build_reward_funcs(
        specs, task=data.task, reward_kwargs=cfg.reward_kwargs,
        max_completion_length=cfg.max_completion_length, device=device,
        reload=resume_from is not None,  # a fixed plugin takes effect in the process that ran it
    )
    agent = Agent.from_config(cfg, given.tools, given.environment_factory) if not ranked else None
    if agent is not None:
        agent.check_template(tokenizer)
        if agent.environments is not None:
            agent.environments.check_rows(data.train)
        reward_funcs += [RewardFunction(name=fn.__name__, fn=fn, spec="environment") for fn in agent.reward_functions()]
    reward_names = ["rank_score"] if ranked else [f.name for f in reward_funcs]
    if dist.is_main:
        for reporter in make_reporters(cfg, run_dir):
            reporters.append(reporter)
            subscribe(reporter)
    # an environment's own reward has weight 1, after the configured functions' (as TRL)
    from_env = sum(f.spec == "environment" for f in reward_funcs)
    reward_weights = torch.tensor(list(cfg.reward_weights or [1.0] * (len(reward_names) - from_env)) + [1.0] * from_env)
    eos_ids = eos_token_ids(model, tokenizer)
    # DDP across processes, or FSDP2 sharding the model in place (see engine.parallel.sharding); alone, the model itself
    train_model, optimizer = dist.prepare(model, make_optimizer(model, cfg, device))
    if cfg.use_vllm and given.rollout_backend is None:
        from engine.rollout.vllm_colocated import make_vllm_backend

        backend = make_vllm_backend(cfg, model, tokenizer.pad_token_id, eos_ids, dist)
    else:
        backend = given.rollout_backend(model, tokenizer.pad_token_id, eos_ids) if given.rollout_backend \
            else TransformersRollout(model, tokenizer.pad_token_id, eos_ids, cfg.cache_implementation)
    return RunParts(
        given=given, device=device, model=model, tokenizer=tokenizer, ref_model=ref_model, use_bf16=use_bf16,
        data=data, renderer=renderer, reward_funcs=reward_funcs, reward_names=reward_names,
        reward_weights=reward_weights, eos_ids=eos_ids, train_model=train_model, optimizer=optimizer,
        sharded=is_sharded(model), backend=backend, separate_engine=getattr(backend, "separate_engine", False),
        sampling_gen=sampling_generator(device, cfg.seed + dist.rank),
        scheduler=make_scheduler(optimizer, cfg), ranked=ranked, agent=agent,
        rollout_func=custom_rollout(cfg, given, model, tokenizer, renderer, eos_ids, device),
        max_model_len=getattr(getattr(model, "config", None), "max_position_embeddings", None),
    )


def custom_rollout(cfg: RunConfig, given: Given, model, tokenizer, renderer, eos_ids, device):
    """The user's ``rollout_func`` (handed in or named by the config), ready to make rounds; None without one."""
    fn = given.rollout_func
    if fn is None and cfg.rollout_func:
        fn = load_spec(cfg.rollout_func, "rollout_func")
    if fn is None:
        return None
    return CustomRollout(fn, cfg=cfg, model=model, tokenizer=tokenizer, renderer=renderer, eos_ids=eos_ids,
                         device=device)
