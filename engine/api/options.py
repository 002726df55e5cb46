"""``GRPOTrainer``'s constructor arguments beyond the model, rewards and data, read as TRL
reads them: ``peft_config``, ``reward_processing_classes``, ``optimizers``,
``quantization_config``, an ``IterableDataset``, the hub settings of ``args``, and the
transformers ``TrainerState`` that ``trainer.state`` is. What the engine cannot honour is
refused here, with what to do instead, before any model is loaded.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from engine.api.config import GRPOConfigError
from engine.config.schema import RunConfig

_LORA_UNSUPPORTED = {"use_dora": False, "use_rslora": False, "modules_to_save": None, "bias": "none",
                     "layers_to_transform": None}


def peft_options(peft_config: Any) -> dict:
    """``peft_config`` (peft's ``LoraConfig``, or a mapping) as the engine's ``peft`` options."""
    if isinstance(peft_config, dict):
        return dict(peft_config)
    kind = str(getattr(peft_config, "peft_type", "")).rpartition(".")[2]
    if kind != "LORA":
        raise GRPOConfigError([f"peft_config: only LoRA is supported here, got {type(peft_config).__name__}"],
                              source="GRPOTrainer")
    problems = [f"peft_config.{name}={getattr(peft_config, name)!r}: not supported here; leave it at {default!r}"
                for name, default in _LORA_UNSUPPORTED.items() if getattr(peft_config, name, default) != default]
    if problems:
        raise GRPOConfigError(problems, source="GRPOTrainer")
    options = {"r": peft_config.r, "lora_alpha": peft_config.lora_alpha, "lora_dropout": peft_config.lora_dropout}
    targets = peft_config.target_modules
    if targets is not None:
        options["target_modules"] = targets if isinstance(targets, str) else sorted(targets)
    return options


def check_unsupported(optimizers: Any, quantization_config: Any) -> None:
    problems = []
    if optimizers is not None and tuple(optimizers) != (None, None):
        problems.append("optimizers: the optimizer and its schedule are built from args (optim, learning_rate, "
                        "adam_beta1/adam_beta2, weight_decay, lr_scheduler_type, warmup_ratio); pass (None, None)")
    if quantization_config is not None:
        problems.append("quantization_config: quantized loading is not supported yet; load the model in "
                        "bfloat16 (GRPOConfig(model_init_kwargs={'dtype': 'bfloat16'})) or train a LoRA adapter "
                        "(peft_config=)")
    if problems:
        raise GRPOConfigError(problems, source="GRPOTrainer")


def check_reward_processing_classes(classes: Any, specs: list) -> None:
    """TRL's ``reward_processing_classes``: one per reward function, None where it has none.
    Reward functions that are not models ignore theirs (as in TRL); a reward model here
    reads its tokenizer from its own folder, so one given for it is refused."""
    if classes is None:
        return
    classes = list(classes) if isinstance(classes, (list, tuple)) else [classes]
    if len(classes) != len(specs):
        raise GRPOConfigError([f"reward_processing_classes: has {len(classes)} entries but reward_funcs has "
                               f"{len(specs)} functions"], source="GRPOTrainer")
    problems = [f"reward_processing_classes[{i}]: the reward model {spec!r} uses the tokenizer saved with it; "
                "pass None there" for i, (spec, given) in enumerate(zip(specs, classes))
                if given is not None and isinstance(spec, str) and spec.startswith("model:")]
    if problems:
        raise GRPOConfigError(problems, source="GRPOTrainer")


def is_iterable_dataset(dataset: Any) -> bool:
    return type(dataset).__name__ in ("IterableDataset", "IterableDatasetDict")


def as_rows(dataset: Any, what: str, cfg: RunConfig | None) -> Any:
    """An ``IterableDataset`` read into rows: the prompts ``max_steps`` steps take (``cfg``
    given: the training set), or all of it (the eval set). Anything else as given."""
    if not is_iterable_dataset(dataset):
        return dataset
    if type(dataset).__name__ == "IterableDatasetDict":
        raise TypeError(f"{what}: an IterableDatasetDict has several splits; pass one, e.g. dataset['train']")
    if cfg is None:
        return list(dataset)
    if cfg.max_steps <= 0:
        raise GRPOConfigError([f"{what}: an IterableDataset has no length, so epochs cannot be counted: "
                               "set max_steps to a positive number"], source="GRPOTrainer")
    per_step = max(1, cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps // cfg.num_generations)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    wanted = per_step * cfg.max_steps * world
    return list(itertools.islice(dataset, wanted))


@dataclass
class HubSettings:
    """The hub fields of ``args`` that ``push_to_hub`` reads."""

    push: bool = False
    repo_id: str | None = None
    token: str | None = None
    private: bool | None = None
    revision: str | None = None

    @classmethod
    def of(cls, args: Any) -> HubSettings:
        return cls(push=bool(getattr(args, "push_to_hub", False)), repo_id=getattr(args, "hub_model_id", None),
                   token=getattr(args, "hub_token", None), private=getattr(args, "hub_private_repo", None),
                   revision=getattr(args, "hub_revision", None))


def new_state(cfg: RunConfig):
    """``trainer.state``: transformers' ``TrainerState``, kept current by the run's events."""
    from transformers import TrainerState

    return TrainerState(
        max_steps=cfg.max_steps, logging_steps=cfg.logging_steps, eval_steps=cfg.eval_steps,
        save_steps=cfg.save_steps, train_batch_size=cfg.per_device_train_batch_size,
        is_world_process_zero=int(os.environ.get("RANK", "0") or 0) == 0,
        is_local_process_zero=int(os.environ.get("LOCAL_RANK", "0") or 0) == 0,
    )
