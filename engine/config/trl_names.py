"""How each TRL 1.16 setting that is not a :class:`~engine.config.schema.RunConfig` field is
handled: the one table both ``engine.api.GRPOConfig`` and the preset loader read, so a
name means the same in Python and in YAML and none is dropped without a word.

A name is **mapped** onto our fields (:mod:`engine.config.trl_mapping` does it), has **no
effect** on a run's results (accepted; a warning names it and says why), or is **refused**
unless it holds TRL's default (the message says what to do instead). Names that are
``RunConfig`` fields are ours and pass straight through. ``SCRIPT_NAMES`` are TRL's
``ScriptArguments``/``ModelConfig`` (and open-r1's) recipe keys: a YAML recipe feeds them to
TRL's other dataclasses, so presets take them, while ``GRPOConfig`` leaves them to those
classes (``TrlParser((ScriptArguments, GRPOConfig, ModelConfig))`` must not see a name twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Handling:
    """What happens to one TRL name."""

    kind: Literal["mapped", "no_effect", "refused", "trainer"]
    note: str
    """mapped: where it goes | no_effect: why nothing changes | refused: what to do instead |
    trainer: what GRPOTrainer does with it (in a preset a switch, default False, is refused
    unless default; a setting is accepted with no effect)"""
    default: Any = None
    """TRL's default: always accepted (a refused name is only refused when set otherwise)"""
    type: Any = None
    """the type TRL's parser reads it as, where the default alone does not say (dicts)"""


def _map(note: str, default: Any = None, type: Any = None) -> Handling:
    return Handling("mapped", note, default, type)


def _none(note: str, default: Any = None, type: Any = None) -> Handling:
    return Handling("no_effect", note, default, type)


def _refuse(note: str, default: Any = None, type: Any = None) -> Handling:
    return Handling("refused", note, default, type)


def _trainer(note: str, default: Any = None, type: Any = None) -> Handling:
    return Handling("trainer", note, default, type)


_SHARDING = "multi-GPU runs use the engine's own sharding (torchrun; see the README's multi-GPU section)"
_HUB = "read by GRPOTrainer.push_to_hub(); in a preset, push <run dir>/final with huggingface_hub"
_EVAL_ONLY = "TRL's GRPOTrainer does not use it either"
_LOGGING = "every step's metrics go to <run dir>/metrics.jsonl; console logging is the engine's"
_NOT_YET = "not supported yet; remove it"

TRL_NAMES: dict[str, Handling] = {
    # --- mapped onto our fields
    "shuffle_dataset": _map("dataset.shuffle", True),
    "train_sampling_strategy": _map("dataset.shuffle (random: true, sequential: false)", "random"),
    "generation_kwargs": _map("temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens set those "
                              "fields; other keys go to vLLM's SamplingParams (with use_vllm)", None, dict),
    "system_prompt": _map("dataset.system_prompt", None, str),
    "save_strategy": _map("steps: save_steps | no: save_steps 0 (only the final model); epoch/best are refused",
                          "steps"),
    "eval_strategy": _map("steps: eval_steps (logging_steps when eval_steps is unset); no: the default "
                          "(before and after training when there is an eval set); epoch is refused", "no"),
    "trust_remote_code": _map("model_init_kwargs.trust_remote_code unless model_init_kwargs sets it (as TRL)", False),
    "vllm_importance_sampling_cap": _map("vllm_importance_sampling_clip_max (TRL's older name)", None, float),
    # --- no effect on a run's results
    "logging_dir": _none("TensorBoard logs go to <run dir>/tensorboard", None, str),
    "logging_strategy": _none(_LOGGING, "steps"),
    "logging_first_step": _none(_LOGGING, False),
    "logging_nan_inf_filter": _none(_LOGGING, True),
    "log_level": _none("the run's events go to <run dir>/events.jsonl", "passive"),
    "log_level_replica": _none("the run's events go to <run dir>/events.jsonl", "warning"),
    "log_on_each_node": _none("the run's events go to <run dir>/events.jsonl", True),
    "log_multimodal": _none("prompts are text here", True),
    "log_unique_prompts": _none("samples.jsonl holds the logged groups", False),
    "num_completions_to_print": _none("completions are shown by the dashboard and samples.jsonl", None, int),
    "disable_tqdm": _trainer("GRPOTrainer.train() prints its log lines without a progress bar; a preset's "
                             "progress is the dashboard's", None, bool),
    "skip_memory_metrics": _none("memory is sampled by the engine", True),
    "include_num_input_tokens_seen": _none("token counts are logged by the engine", "no"),
    "project": _none("trackio's project: report_to: [trackio] logs into project grpo-tui", "huggingface"),
    "trackio_space_id": _none("report_to: [trackio] logs locally unless trackio's own settings say otherwise", None, str),
    "trackio_bucket_id": _none("report_to: [trackio] logs locally unless trackio's own settings say otherwise", None, str),
    "trackio_static_space_id": _none("report_to: [trackio] logs locally unless trackio's own settings say otherwise",
                                     None, str),
    "do_train": _none("train() trains", False),
    "do_eval": _none("an eval set (eval_dataset, dataset.eval_split or eval_size) decides", False),
    "do_predict": _none(_EVAL_ONLY, False),
    "per_device_eval_batch_size": _none("evaluation batches are sized by the engine; results are the same", 8),
    "eval_accumulation_steps": _none("evaluation batches are sized by the engine", None, int),
    "eval_do_concat_batches": _none(_EVAL_ONLY, True),
    "eval_use_gather_object": _none(_EVAL_ONLY, False),
    "eval_on_start": _none("evaluation runs before training whenever there is an eval set", False),
    "batch_eval_metrics": _none(_EVAL_ONLY, False),
    "include_for_metrics": _none(_EVAL_ONLY, [], list[str]),
    "prediction_loss_only": _none(_EVAL_ONLY, False),
    "label_names": _none(_EVAL_ONLY, None, list[str]),
    "label_smoothing_factor": _none(_EVAL_ONLY, 0.0),
    "length_column_name": _none(_EVAL_ONLY, "length"),
    "remove_unused_columns": _none("every dataset column reaches the reward functions (as TRL's GRPO)", False),
    "dataloader_num_workers": _none("prompts are read in process", 0),
    "dataloader_pin_memory": _none("prompts are read in process", True),
    "dataloader_persistent_workers": _none("prompts are read in process", False),
    "dataloader_prefetch_factor": _none("prompts are read in process", None, int),
    "dataloader_multiprocessing_context": _none("prompts are read in process", None, str),
    "dataloader_in_order": _none("prompts are read in process", True),
    "dataloader_drop_last": _none("every optimizer step takes a whole batch of prompts", False),
    "pad_to_multiple_of": _none("padding is the engine's and does not change the results", "auto"),
    "use_cache": _none("generation always uses the KV cache; training forwards never do", False),
    "torch_empty_cache_steps": _none("memory housekeeping only", None, int),
    "ds3_gather_for_generation": _none("no DeepSpeed here", True),
    "local_rank": _none("set by the launcher (torchrun)", -1),
    "ddp_backend": _none(_SHARDING, None, str),
    "ddp_timeout": _none(_SHARDING, 1800),
    "ddp_find_unused_parameters": _none(_SHARDING, None, bool),
    "ddp_bucket_cap_mb": _none(_SHARDING, None, int),
    "ddp_broadcast_buffers": _none(_SHARDING, None, bool),
    "ddp_static_graph": _none(_SHARDING, None, bool),
    "save_on_each_node": _none("the main process writes the run directory", False),
    "save_only_model": _none("checkpoints also hold the optimizer so a run can resume; the model is the same", False),
    "restore_callback_states_from_checkpoint": _none("resuming restores the engine's whole state", False),
    "ignore_data_skip": _none("resuming restores the prompt order exactly", False),
    "hub_model_id": _trainer(_HUB, None, str),
    "hub_strategy": _none("GRPOTrainer pushes once, when training ends (hub_strategy 'end')", "every_save"),
    "hub_token": _trainer(_HUB, None, str),
    "hub_private_repo": _trainer(_HUB, None, bool),
    "hub_always_push": _none("GRPOTrainer pushes once, when training ends, and waits for the upload", False),
    "hub_revision": _trainer(_HUB, None, str),
    # --- refused unless at TRL's default
    "push_to_hub": _trainer("GRPOTrainer.train() uploads <output_dir>/final at the end (hub_strategy 'end'); "
                            "in a preset, push <run dir>/final with huggingface_hub's upload_folder", False),
    "overwrite_output_dir": _trainer("GRPOTrainer clears the earlier run's files from output_dir before training; "
                                     "a preset never overwrites a run: choose a new output_dir", False),
    "log_completions_hub_repo": _refuse("completions are in <run dir>/completions with log_completions; "
                                        "upload that folder", None, str),
    "resume_from_checkpoint": _trainer("as in transformers, for the script to pass to "
                                       "GRPOTrainer.train(resume_from_checkpoint=...); in a preset: "
                                       "grpo-tui resume <run dir>", None, str),
    "fp16": _refuse("use torch_dtype: float16 (or bf16)", False),
    "bf16_full_eval": _refuse("evaluation uses the training dtype", False),
    "fp16_full_eval": _refuse("evaluation uses the training dtype", False),
    "tf32": _refuse("TF32 matmuls are not switched here; " + _NOT_YET, None, bool),
    "use_cpu": _refuse("the device is chosen automatically; run with CUDA_VISIBLE_DEVICES= to use the CPU", False),
    "deepspeed": _refuse(_SHARDING, None, str),
    "fsdp": _refuse(_SHARDING, None, str),
    "fsdp_config": _refuse(_SHARDING, None, dict),
    "accelerator_config": _refuse(_SHARDING, None, dict),
    "parallelism_config": _refuse(_SHARDING, None, dict),
    "average_tokens_across_devices": _refuse("the loss is normalised over every process's tokens", True),
    "optim_args": _refuse("optim's optimizer takes adam_beta1/adam_beta2/adam_epsilon/weight_decay; "
                                 "other options are " + _NOT_YET, None, str),
    "optim_target_modules": _refuse("the optimizer covers every trainable parameter", None, str),

    "activation_checkpointing": _refuse("use gradient_checkpointing: true", None, str),
    "activation_checkpointing_kwargs": _refuse("use gradient_checkpointing: true", None, dict),
    "liger_kernel_config": _refuse("use_liger_kernel applies Liger's default kernels; remove it", None, dict),
    "use_bias_correction_kl": _refuse("the KL estimate here has no bias correction; " + _NOT_YET, True),
    "data_seed": _refuse("the run's seed orders the prompts; set seed", None, int),
    "full_determinism": _refuse("runs are seeded by seed; deterministic kernels are " + _NOT_YET, False),
    "auto_find_batch_size": _refuse("set per_device_train_batch_size (out of memory pauses the run)", False),
    "torch_compile_backend": _refuse("torch_compile uses its default backend", None, str),
    "torch_compile_mode": _refuse("torch_compile uses its default mode", None, str),
    "enable_jit_checkpoint": _refuse("checkpoints follow save_steps", False),
    "neftune_noise_alpha": _refuse("NEFTune is for supervised fine-tuning; remove it", None, float),
    "eval_delay": _refuse("evaluation follows eval_steps", 0),
    "load_best_model_at_end": _refuse("the final model is the last step's; keep checkpoints with save_steps", False),
    "metric_for_best_model": _refuse("the final model is the last step's; keep checkpoints with save_steps", None, str),
    "greater_is_better": _refuse("the final model is the last step's; keep checkpoints with save_steps", None, bool),
    "debug": _refuse("debug modes are not supported; remove it", ""),
    "use_transformers_paged": _refuse("generation uses the model's generate(); use_vllm for a faster engine", False),
    "use_transformers_continuous_batching": _refuse("generation uses the model's generate(); use_vllm for a "
                                                    "faster engine", False),
    "transformers_continuous_batching_config": _refuse("generation uses the model's generate()", None, dict),
    "vllm_model_impl": _refuse("vLLM's own model implementation is used", "vllm"),
    "vllm_structured_outputs_regex": _refuse("structured outputs are " + _NOT_YET, None, str),
}
"""Every TRL 1.16 GRPOConfig / TrainingArguments name that is not a RunConfig field."""

SCRIPT_NAMES: dict[str, Handling] = {
    "dataset_name": _map("dataset.name (the hub dataset; replaces the default task)", None, str),
    "dataset_config": _map("dataset.config", None, str),
    "dataset_train_split": _map("dataset.split", "train", str),
    "dataset_test_split": _map("dataset.eval_split", "test", str),
    "dataset_prompt_column": _map("dataset.prompt_column", "prompt", str),
    "dataset_streaming": _refuse("datasets are loaded whole; take a slice of the split", False),
    "dtype": _map("torch_dtype", None, str),
    "model_revision": _refuse("download that revision and give its folder as model_name_or_path", "main", str),
    "attn_implementation": _none("the attention kernel changes speed and memory, not results "
                                 "(the model's default is used)", None, str),
    "use_peft": _map("peft: {r: lora_r, lora_alpha, lora_dropout, target_modules: lora_target_modules}", False),
    "lora_r": _map("peft.r (with use_peft)", 16),
    "lora_alpha": _map("peft.lora_alpha (with use_peft)", 32),
    "lora_dropout": _map("peft.lora_dropout (with use_peft)", 0.05),
    "lora_target_modules": _map("peft.target_modules (with use_peft)", None, list[str]),
    "load_in_8bit": _refuse("quantized loading is " + _NOT_YET, False),
    "load_in_4bit": _refuse("quantized loading is " + _NOT_YET, False),
    "chat_template": _refuse("put the template in the model folder's tokenizer_config.json", None, str),
    "callbacks": _refuse("recipe callbacks are not run here; remove them", [], list[str]),
    "benchmarks": _refuse("evaluate the final model separately; remove it", [], list[str]),
    "wandb_entity": _refuse("set WANDB_ENTITY in the environment", None, str),
    "wandb_project": _refuse("set WANDB_PROJECT in the environment", None, str),
    "wandb_run_group": _refuse("set WANDB_RUN_GROUP in the environment", None, str),
    "hub_model_revision": _none(_HUB, "main", str),
    "ignore_bias_buffers": _none("for DDP with buffers; the engine's sharding handles them", False),
}
"""TRL's ScriptArguments / ModelConfig and open-r1's recipe keys: presets only (see the module doc)."""


def handling(name: str) -> Handling | None:
    """The handling of a TRL name that is not ours, or None."""
    return TRL_NAMES.get(name) or SCRIPT_NAMES.get(name)


def trl_name_rows() -> list[tuple[str, str, str, str]]:
    """(name, how it is handled, TRL's default, note) for every TRL name that is not ours,
    GRPOConfig's first, then the recipe keys: what ``grpo-tui fields --trl`` prints."""
    from engine.config.schema import RunConfig
    import dataclasses

    ours = {f.name for f in dataclasses.fields(RunConfig)}
    kinds = {"mapped": "mapped", "no_effect": "no effect", "refused": "refused unless default",
             "trainer": "by GRPOTrainer"}
    rows = []
    for table, where in ((TRL_NAMES, ""), (SCRIPT_NAMES, " [recipe key: presets only]")):
        for name, h in table.items():
            if name not in ours or name == "generation_kwargs":
                rows.append((name, kinds[h.kind], repr(h.default), h.note + where))
    return rows
