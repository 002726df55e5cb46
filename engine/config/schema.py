"""Run configuration: the typed dataclasses a run is built from, the constants the engine
shares about them, :class:`ConfigError`, and a config's plain-data and YAML forms
(:func:`config_to_dict`, :func:`dump_yaml`). A preset is a flat YAML mapping of
:class:`RunConfig` fields with one nested ``dataset:`` block. Field names follow TRL's
``GRPOConfig`` (and transformers' ``TrainingArguments``) wherever those have the field, so a
TRL user can read a preset without a glossary. Checking values and building a
:class:`RunConfig` is :mod:`engine.config.fields` (each field) and :mod:`engine.config.checks`
(across fields, and building); YAML text, ``--set`` overrides and preset
files are :mod:`engine.config.presets`.

The field annotations are the one place each rule is written: a ``Literal`` (often a named
alias such as :data:`LossType`) for a choice, ``Annotated[float, Range(gt=0)]`` or
``Annotated[str, NotEmpty()]`` for what a value must satisfy
(:mod:`engine.config.constraints`). Validation derives its tables from them, and the string
under each field is its doc, which users read in ``grpo-tui fields``
(:mod:`engine.config.docs`), the preset editor and the adjust form.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Iterable, Literal

import yaml

from engine.config.constraints import NotEmpty, Range


def bundled_root(module_file: str | Path, prefixes: Iterable[str | Path] = ()) -> Path:
    """Where the bundled presets and tiny model live: the source tree (a clone, an editable
    install), else ``<data dir>/share/grpo-tui`` where a wheel put them. The data dir is the
    installation scheme's: ``sys.prefix`` in a venv, ``~/.local`` with ``pip install --user``,
    the prefix with ``--prefix``, ``/usr/local`` for a system pip -- each an ancestor of the
    site-packages folder the package went to, so the ancestors are searched, then ``prefixes``.

        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> (base / "share/grpo-tui/presets").mkdir(parents=True)
        >>> bundled_root(base / "lib/python3.11/site-packages/engine/config/schema.py") == base / "share/grpo-tui"
        True
    """
    here = Path(module_file).resolve()
    source = here.parents[2]
    if (source / "presets").is_dir():
        return source
    for folder in [*here.parents[3:], *map(Path, prefixes)]:
        candidate = folder / "share" / "grpo-tui"
        if (candidate / "presets").is_dir():
            return candidate
    return Path(sys.prefix) / "share" / "grpo-tui"


def _install_prefixes() -> list[str]:
    import site

    return [sys.prefix, sys.base_prefix, getattr(site, "USER_BASE", None) or ""]


REPO_ROOT = bundled_root(__file__, _install_prefixes())
"""The folder holding the bundled ``presets/`` and ``assets/``: relative paths fall back to
it, so the bundled model and presets are found wherever the command is run from."""

BUILTIN_REWARDS = ("accuracy", "answer_accuracy", "format", "tag_count", "reasoning_steps", "len", "cosine",
                   "repetition_penalty", "soft_overlong_punishment", "length")
"""Reward names known without asking ``engine.rewards.scoring`` (which may know more)."""
BUILTIN_ENVIRONMENTS = ("calculator",)
"""Environments that ship with the engine (engine.agents), by the name presets give them."""

ADJUSTABLE_FIELDS = (
    "learning_rate",
    "beta",
    "temperature",
    "top_p",
    "epsilon",
    "epsilon_high",
    "entropy_coef",
    "max_completion_length",
    "reward_weights",
)
"""Fields the trainer can change between two steps of a running job."""

DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

REWARD_MODEL_PREFIX = "model:"
"""``reward_funcs`` entries starting with this name a sequence-classification reward model."""


# --------------------------------------------------------------------------- choices
# Each field with a fixed set of values is typed with one of these: validation, the field
# listing (`grpo-tui fields`) and the code that acts on a value all read the same tuple,
# e.g. ``typing.get_args(LossType)``.

TorchDtype = Literal["auto", "float32", "bfloat16", "float16"]
ModelInit = Literal["pretrained", "random"]
# transformers' cache kinds, as TRL passes them to generate(): the static ones choose the static loop
CacheImplementation = Literal["static", "offloaded_static", "dynamic", "dynamic_full", "offloaded", "hybrid",
                              "sliding_window", "quantized"]
LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]
ScaleRewards = Literal["group", "batch", "none"]
ImportanceSamplingLevel = Literal["token", "sequence"]
LrSchedulerType = Literal["constant", "linear", "cosine", "constant_with_warmup", "cosine_with_restarts", "polynomial",
                          "inverse_sqrt", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay"]
"""transformers' schedules (``transformers.get_scheduler``) but the two that step on an evaluation
metric (reduce_lr_on_plateau, greedy): GRPO's evaluation gives none"""
OptimizerName = Literal["adamw_torch_fused", "adamw_torch", "adafactor", "adamw_8bit", "adamw_bnb_8bit",
                        "paged_adamw_8bit", "paged_adamw_32bit", "sgd", "adagrad", "rmsprop"]
"""transformers' ``optim`` names built here (the 8-bit and paged ones need bitsandbytes)"""
MultiObjectiveAggregation = Literal["sum_then_normalize", "normalize_then_sum"]
DatasetFormat = Literal["prompts", "ranked"]
VllmMode = Literal["colocate", "server"]
VllmImportanceSamplingMode = Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]


# --------------------------------------------------------------------------- dataclasses


@dataclass
class DatasetConfig:
    """Where prompts come from: exactly one of ``task``, ``path`` or ``name``."""

    task: str | None = None
    """built-in task name (e.g. "arithmetic"); answers are verified by the task itself"""
    task_args: dict = field(default_factory=dict)
    """keyword arguments for the built-in task, e.g. {"digits": 2, "ops": "+"}"""
    path: Annotated[str, NotEmpty()] | None = None
    """local .jsonl/.json/.csv/.parquet file; relative paths resolve against the preset's folder"""
    name: Annotated[str, NotEmpty()] | None = None
    """🤗 datasets hub id"""
    config: str | None = None
    """hub dataset config name"""
    split: Annotated[str, NotEmpty()] = "train"
    """split the training prompts come from"""
    eval_split: str | None = None
    """hub split for evaluation; None holds eval_size rows out of the training split"""
    eval_size: Annotated[int, Range(ge=0)] = 200
    """rows held out of the training split for evaluation when eval_split is None"""
    prompt_column: Annotated[str, NotEmpty()] = "prompt"
    """column holding the prompt: a string, or a list of chat messages"""
    system_prompt: str | None = None
    """prepended as a system message when rendering the chat template"""
    chat_template: bool | None = None
    """render string prompts with the tokenizer's chat template; None = only when prompts are
    chat messages or a system_prompt is set"""
    shuffle: bool = True
    """shuffle the training prompts (with the run seed)"""
    format: DatasetFormat = "prompts"
    """prompts: generate completions and score them | ranked: train on given responses with ranks
    (rows {"prompt": ..., "group": [{"response": ..., "rank": 1}, ...]}, a local file)"""


@dataclass
class RunConfig:
    """Everything one GRPO run needs; names follow TRL's GRPOConfig where it has them."""

    # --- model
    model_name_or_path: Annotated[str, NotEmpty()] = "assets/tiny-model"
    """hub id or local folder; relative paths resolve against the preset folder, the current folder, then the repository;
    with model_init random only its tokenizer and config.json are read"""
    model_init: ModelInit = "pretrained"
    """pretrained: start from the weights in model_name_or_path | random: a new model of that architecture (its
    config.json updated with model_config_overrides) initialised from seed, so nothing is downloaded; the reference
    model is the same initialisation and a resumed run loads the checkpoint's weights"""
    model_config_overrides: dict = field(default_factory=dict)
    """model_init random: config.json values to change, e.g. {hidden_size: 512, num_hidden_layers: 8}; head_dim
    follows hidden_size / num_attention_heads unless set; a key the architecture's config lacks is refused at load"""
    torch_dtype: TorchDtype = "auto"
    """dtype of the weights; auto = bfloat16 on a GPU that supports it, float32 elsewhere"""
    model_init_kwargs: dict | None = None
    """passed to from_pretrained (TRL's): revision, trust_remote_code, attn_implementation, subfolder, cache_dir,
    local_files_only, low_cpu_mem_usage; its dtype / torch_dtype sets torch_dtype"""
    disable_dropout: bool = False
    """set every dropout module's p to 0 in the policy and the reference (TRL's), so the log-probs of the
    training forward match those of sampling"""
    cast_lm_head_to_fp32: bool = False
    """run the output layer in float32 whatever the weights' dtype (TRL's; tied embeddings keep their dtype)"""
    use_liger_kernel: bool = False
    """patch the model's layers with Liger's Triton kernels (RMSNorm, RoPE, SwiGLU; needs the liger-kernel
    package and a CUDA GPU); the log-probs are computed as without it (TRL 1.16 does the same)"""
    chat_template_kwargs: dict | None = None
    """extra variables for the chat template, e.g. {enable_thinking: false} for Qwen3"""
    dataset: DatasetConfig = field(default_factory=lambda: DatasetConfig(task="arithmetic"))
    """prompt source (default: the built-in arithmetic task the bundled model was warm-started on)"""

    # --- generation
    num_generations: Annotated[int, Range(ge=2, le=4096)] = 8
    """completions sampled per prompt (the group size G)"""
    max_prompt_length: Annotated[int, Range(ge=1)] | None = 512
    """prompts longer than this many tokens are truncated from the left; None = no limit"""
    max_completion_length: Annotated[int, Range(ge=1, le=1_048_576)] = 512
    """maximum tokens generated per completion (TRL's default, 512)"""
    temperature: Annotated[float, Range(gt=0, le=100)] = 1.0
    """sampling temperature"""
    top_p: Annotated[float, Range(gt=0, le=1)] = 1.0
    """nucleus sampling: keep the smallest token set with this much probability mass"""
    top_k: Annotated[int, Range(ge=0)] = 0
    """keep only the k most likely tokens; 0 = off"""
    min_p: Annotated[float, Range(ge=0, le=1)] | None = None
    """drop tokens below min_p times the top token's probability; None = off"""
    repetition_penalty: Annotated[float, Range(gt=0)] = 1.0
    """penalise tokens already in the prompt or completion; 1.0 = off"""
    cache_implementation: CacheImplementation | None = None
    """the KV cache of generation without vLLM: static = allocated once, each step a replayed CUDA graph on a GPU
    (Llama, Qwen2/3, Mistral); dynamic = grown per token, rows of a group share their common prefix (fastest on a
    CPU; transformers' other kinds take it too); None = static on CUDA, dynamic elsewhere. Greedy tokens agree (in
    bf16 up to rounding); sampled ones follow the same distribution"""
    generation_kwargs: dict | None = None
    """TRL's: its temperature, top_p, top_k, min_p, repetition_penalty and max_new_tokens override those fields;
    other keys (e.g. {presence_penalty: 0.5}) go to vLLM's SamplingParams and need use_vllm"""

    # --- generation with vLLM (a CUDA GPU and the vllm extra)
    use_vllm: bool = False
    """generate with vLLM instead of the training model's own forward passes"""
    vllm_mode: VllmMode = "colocate"
    """colocate: a vLLM engine inside the training process, sharing its GPU(s) | server: a separately
    started vLLM server (`grpo-tui vllm-serve`) on GPUs of its own"""
    vllm_gpu_memory_utilization: Annotated[float, Range(gt=0, le=1)] = 0.3
    """share of GPU memory the colocated engine takes (weights and KV cache)"""
    vllm_tensor_parallel_size: Annotated[int, Range(ge=1)] = 1
    """GPUs one colocated engine spans; must divide the number of processes"""
    vllm_enable_sleep_mode: bool = False
    """free the colocated engine's memory (weights and KV cache) during the update; costs a reload per step"""
    vllm_max_model_length: Annotated[int, Range(ge=1)] | None = None
    """the engine's context window; None = max_prompt_length + max_completion_length"""
    vllm_server_base_url: str | None = None
    """server mode: e.g. http://gpu-host:8000; None = http://vllm_server_host:vllm_server_port"""
    vllm_server_host: str = "0.0.0.0"
    """server mode: host of the vLLM server"""
    vllm_server_port: Annotated[int, Range(ge=1, le=65535)] = 8000
    """server mode: port of the vLLM server"""
    vllm_server_timeout: Annotated[float, Range(gt=0)] = 240.0
    """server mode: seconds to wait for the server to come up"""
    vllm_group_port: Annotated[int, Range(ge=1, le=65535)] = 51216
    """server mode: port of the NCCL group that pushes weights to the server"""
    vllm_importance_sampling_correction: bool = True
    """reweight the loss by π_train/π_vLLM of the sampled tokens (the engines' numerics differ)"""
    vllm_importance_sampling_mode: VllmImportanceSamplingMode = "sequence_mask"
    """the ratio per token or per sequence; ratios outside [clip_min, clip_max] are clipped
    (truncate) or zeroed, so the token or sequence drops out (mask)"""
    vllm_importance_sampling_clip_min: Annotated[float, Range(ge=0)] | None = None
    """lower bound of the ratio; None = none"""
    vllm_importance_sampling_clip_max: Annotated[float, Range(gt=0)] | None = 3.0
    """upper bound of the ratio; None = none"""

    # --- algorithm
    beta: Annotated[float, Range(ge=0, le=1000)] = 0.0
    """KL coefficient against the reference model; 0 = no reference model is kept"""
    epsilon: Annotated[float, Range(gt=0, le=10)] = 0.2
    """lower clipping range of the importance ratio (1 - epsilon)"""
    epsilon_high: Annotated[float, Range(gt=0, le=10)] | None = None
    """upper clipping range (1 + epsilon_high); None = epsilon (DAPO uses 0.28); with loss_type cispo the cap
    ε_max on the importance weight itself (ScaleRL recommends 5.0)"""
    delta: Annotated[float, Range(gt=0)] | None = None
    """two-sided clipping bound on the ratio for negative advantages; None = off"""
    use_bias_correction_kl: bool = True
    """multiply the per-token KL by the importance ratio π/π_old (DeepSeek-V3.2), which makes its
    gradient the unbiased KL gradient; the ratio carries gradient, so with beta > 0 this changes the
    update even on-policy (TRL's default; false = the plain k3 term)"""
    loss_type: LossType = "dapo"
    """how the per-token losses are averaged: grpo per sequence then over sequences; bnpo over the
    micro-batch's tokens; dr_grpo over sequences × max_completion_length; dapo over the generation round's
    tokens per optimizer step (TRL's: every step of a round divides by the same count). Other surrogates: cispo (MiniMax-M1) clips the importance weight, not the
    update, averaged as dapo; sapo (arXiv:2511.20347) a smooth temperature gate in place of the clip,
    averaged as grpo; luspo (arXiv:2602.05261) GSPO's loss summed over each sequence's tokens, with
    importance_sampling_level sequence; vespo (arXiv:2602.10693) a Gamma weight of the sequence ratio,
    averaged as dapo"""
    sapo_temperature_neg: Annotated[float, Range(gt=0)] = 1.05
    """sapo: gate temperature for tokens with advantage ≤ 0 (higher fades off-policy updates faster)"""
    sapo_temperature_pos: Annotated[float, Range(gt=0)] = 1.0
    """sapo: gate temperature for tokens with advantage > 0"""
    vespo_k_pos: Annotated[float, Range(ge=0)] = 2.0
    """vespo: power k of the weight w^k·e^(−λw) for advantages ≥ 0 (down-weights ratios below 1)"""
    vespo_lambda_pos: Annotated[float, Range(ge=0)] = 3.0
    """vespo: decay λ of the weight for advantages ≥ 0 (down-weights ratios above 1)"""
    vespo_k_neg: Annotated[float, Range(ge=0)] = 3.0
    """vespo: power k for negative advantages"""
    vespo_lambda_neg: Annotated[float, Range(ge=0)] = 2.0
    """vespo: decay λ for negative advantages"""
    scale_rewards: ScaleRewards = "group"
    """divide advantages by the reward std of the group, of the batch, or not at all (none)"""
    num_iterations: Annotated[int, Range(ge=1)] = 1
    """policy updates per generated batch (mu in the GRPO paper)"""
    importance_sampling_level: ImportanceSamplingLevel = "token"
    """importance ratio per token or per sequence (GSPO)"""
    mask_truncated_completions: bool = False
    """exclude completions cut at max_completion_length from the loss"""
    multi_objective_aggregation: MultiObjectiveAggregation = "sum_then_normalize"
    """sum_then_normalize: weighted sum of rewards, then group advantages | normalize_then_sum (GDPO):
    each reward normalised within its group, then the weighted sum, normalised over the batch"""
    dynamic_sampling: bool = False
    """DAPO: drop groups whose rewards all agree and refill the batch from new prompts"""
    dynamic_sampling_max_tries: Annotated[int, Range(ge=0)] = 3
    """extra generation rounds allowed per step to refill the batch (then zero-signal groups fill the rest)"""
    top_entropy_quantile: Annotated[float, Range(gt=0, le=1)] = 1.0
    """train only on the tokens whose entropy is in this top share (1.0 = all tokens)"""
    entropy_coef: Annotated[float, Range(ge=0, le=100)] = 0.0
    """entropy bonus: subtract this times the mean token entropy from the loss (the same meaning for every
    loss_type), keeping the policy from collapsing; 0 = off; the starting value with use_adaptive_entropy"""
    use_adaptive_entropy: bool = False
    """Skywork-OR1: after each step raise entropy_coef by entropy_coef_delta while the entropy is at or below
    entropy_target, lower it otherwise, and apply it only while the entropy is at or below the target"""
    entropy_coef_min: Annotated[float, Range(ge=0)] = 0.0
    """adaptive entropy control: lower bound of entropy_coef"""
    entropy_coef_max: Annotated[float, Range(ge=0)] = 1.0
    """adaptive entropy control: upper bound of entropy_coef"""
    entropy_coef_delta: Annotated[float, Range(ge=0)] = 0.005
    """adaptive entropy control: change of entropy_coef per optimizer step"""
    entropy_target: Annotated[float, Range(ge=0)] = 0.2
    """adaptive entropy control: mean token entropy (nats) at or below which the bonus applies; models
    start at 2–10 nats, so set it near the entropy logged early in training"""
    off_policy_mask_threshold: Annotated[float, Range(ge=0)] | None = None
    """DeepSeek-V3.2: drop from the loss sequences with a negative advantage whose mean per-token KL
    from the sampling policy exceeds this (e.g. 0.5); None = off"""
    router_aux_loss_coef: Annotated[float, Range(ge=0)] | None = None
    """mixture-of-experts models: weight of the router's load-balancing loss added to the loss; None = the
    model config's own value, 0 = off; refused for a model without a router"""
    sync_ref_model: bool = False
    """move the reference model towards the policy every ref_model_sync_steps (TR-DPO)"""
    ref_model_mixup_alpha: Annotated[float, Range(ge=0, le=1)] = 0.6
    """ref ← alpha·policy + (1 − alpha)·ref at each sync"""
    ref_model_sync_steps: Annotated[int, Range(ge=1)] = 512
    """optimizer steps between reference syncs"""
    steps_per_generation: Annotated[int, Range(ge=1)] | None = None
    """micro-batches fed by one generation round (TRL); None = gradient_accumulation_steps"""
    generation_batch_size: Annotated[int, Range(ge=1)] | None = None
    """completions per generation round; alternative to steps_per_generation"""
    peft: dict | None = None
    """LoRA through peft: {r, lora_alpha, lora_dropout, target_modules, merge_on_save}; None = full fine-tuning"""
    reward_funcs: list[str | dict] = field(default_factory=lambda: ["accuracy"])
    """built-in names, "module:function", "pkg.module.function", "path/file.py:function", "model:<hub id or path>" (a reward model) or a factory {func: "file.py:make_reward", kwargs: {...}}; their weighted sum is the reward"""
    reward_weights: list[float] | None = None
    """one weight per reward function; None = all 1.0"""
    reward_kwargs: dict[str, dict] = field(default_factory=dict)
    """options for reward functions by name, e.g. {"format": {"pattern": "..."}}"""
    reward_timeout: Annotated[float, Range(gt=0)] = 300.0
    """seconds a reward function running in its worker process has for one batch; then that batch's rewards from it are None and the worker is replaced (not in TRL)"""

    # --- tools, environments, multi-turn rollouts (agentic GRPO)
    tools: list[str] = field(default_factory=list)
    """functions the model may call while it generates: "module:function", "pkg.module.function" or
    "path/file.py:function", sync or async, with type hints and a Google-style docstring (their schema);
    needs a chat template that renders tools"""
    environment: str | None = None
    """an environment class (TRL's environment_factory), one instance per rollout: the built-in "calculator",
    "module:Class" or "path/file.py:Class"; reset(**row) starts an episode, its public methods are tools, and
    get_reward() (if it has one) is a reward source with weight 1, named after the class"""
    environments: dict[str, str] = field(default_factory=dict)
    """several environments by name, {name: spec}: each row's `environment` column picks one, and its prompt
    shows only that environment's tools (instead of environment)"""
    max_tool_calling_iterations: Annotated[int, Range(ge=0)] | None = None
    """tool-calling rounds an episode may take; None = until a turn calls no tool or the episode reaches
    max_completion_length tokens (tool results count, and are never trained on)"""
    tool_timeout: Annotated[float, Range(gt=0)] = 60.0
    """seconds one tool call may take; then the model is shown a "timed out" error as its result (not in TRL)"""
    rollout_func: str | None = None
    """"module:function" or "path/file.py:function" that makes each round itself (TRL's rollout_func):
    rollout_func(prompts, trainer) -> {prompt_ids, completion_ids, logprobs, optional env_mask, other columns
    for the reward functions}"""

    # --- optimisation
    optim: OptimizerName = "adamw_torch_fused"
    """optimizer, by transformers' names: adamw_torch_fused (fused where the device has a kernel) | adamw_torch |
    adafactor (fixed learning rate, no relative step) | adamw_8bit = adamw_bnb_8bit, paged_adamw_8bit,
    paged_adamw_32bit (bitsandbytes) | sgd | adagrad | rmsprop"""
    learning_rate: Annotated[float, Range(ge=0, le=1)] = 1e-6
    """learning rate (peak, after warm-up)"""
    adam_beta1: Annotated[float, Range(ge=0, lt=1)] = 0.9
    """AdamW beta1"""
    adam_beta2: Annotated[float, Range(ge=0, lt=1)] = 0.999
    """AdamW beta2"""
    adam_epsilon: Annotated[float, Range(ge=0)] = 1e-8
    """AdamW epsilon"""
    weight_decay: Annotated[float, Range(ge=0)] = 0.0
    """AdamW weight decay"""
    lr_scheduler_type: LrSchedulerType = "linear"
    """learning-rate schedule, built by transformers.get_scheduler (TRL's default, linear): constant ignores warm-up;
    the others warm up first; linear and cosine reach 0 at max_steps, the *_min_lr ones lr_scheduler_kwargs' min_lr
    or min_lr_rate"""
    lr_scheduler_kwargs: dict | None = None
    """options of the schedule, e.g. {min_lr_rate: 0.1} for cosine_with_min_lr, {num_cycles: 2} for
    cosine_with_restarts, {power: 2.0, lr_end: 1e-8} for polynomial"""
    warmup_steps: Annotated[int, Range(ge=0)] = 0
    """linear warm-up steps (wins over warmup_ratio when > 0)"""
    warmup_ratio: Annotated[float, Range(ge=0, lt=1)] = 0.0
    """fraction of max_steps spent warming up"""
    max_grad_norm: Annotated[float, Range(ge=0)] = 1.0
    """gradient clipping norm; 0 = no clipping"""
    per_device_train_batch_size: Annotated[int, Range(ge=1, le=1_000_000)] = 8
    """completions per micro-batch (counted as TRL counts them)"""
    gradient_accumulation_steps: Annotated[int, Range(ge=1, le=1_000_000)] = 1
    """micro-batches per optimizer step; their product with the batch size must be a multiple of num_generations"""
    max_steps: Annotated[int, Range(ge=-1, le=100_000_000)] = -1
    """optimizer steps to run; -1 (or 0) = num_train_epochs passes over the training prompts, worked out from the
    dataset size when the run starts (TRL's rule: a positive max_steps wins over num_train_epochs)"""
    num_train_epochs: Annotated[float, Range(gt=0)] | None = 3.0
    """passes over the training prompts when max_steps is -1 (TRL's default, 3); None = max_steps decides"""
    seed: Annotated[int, Range(ge=0, le=2**32 - 1)] = 42
    """seed for sampling prompts, generation and initialisation"""
    bf16: bool | None = None
    """bfloat16 autocast of the forward passes over fp32 weights; None = on when a CUDA GPU supports it (TRL's None
    turns it on everywhere: here a CPU or a GPU without bfloat16 stays in float32)"""
    gradient_checkpointing: bool = True
    """trade compute for memory in the backward pass: activations are recomputed there (TRL's default, on)"""
    gradient_checkpointing_kwargs: dict | None = None
    """passed to the model's gradient_checkpointing_enable, e.g. {use_reentrant: false}"""
    torch_compile: bool = False
    """compile the training forward with torch.compile (GPU; the first steps are slow while it compiles)"""

    # --- bookkeeping
    output_dir: str | None = None
    """run directory; None = runs/<run_name>-<timestamp>"""
    logging_steps: Annotated[int, Range(ge=1)] = 10
    """headless progress lines (when stdout is not a terminal) every this many steps; metrics.jsonl
    and the dashboard get every step"""
    save_steps: Annotated[int, Range(ge=0)] = 500
    """checkpoint every this many steps; 0 = only the final model (TRL's default, 500)"""
    save_total_limit: Annotated[int, Range(ge=1)] | None = None
    """keep at most this many checkpoints; None = keep all"""
    eval_steps: Annotated[int, Range(ge=0)] = 0
    """evaluate every this many steps; 0 = before and after training only"""
    eval_max_samples: Annotated[int, Range(ge=1)] | None = None
    """cap on evaluation prompts; None = the whole eval split"""
    num_generations_eval: Annotated[int, Range(ge=0)] = 0
    """samples per eval prompt for pass@k (k = this); 0 = greedy accuracy only"""
    log_completions_groups: Annotated[int, Range(ge=0)] = 4
    """groups per step written to samples.jsonl"""
    log_completions: bool = False
    """also write each step's logged groups as completions/completions_NNNNN.parquet (TRL's format)"""
    report_to: list[str] = field(default_factory=list)
    """logging integrations, accelerate's trackers: tensorboard (logs in <run dir>/tensorboard), wandb, trackio,
    mlflow, comet_ml, aim, clearml, dvclive, swanlab; [] = none"""
    run_name: str | None = None
    """name shown in the dashboard and used for the run directory; default = the preset's name"""


@dataclass
class PresetInfo:
    """One preset file as the launcher lists it."""

    name: str
    """file name without .yaml/.yml"""
    path: Path
    """absolute path of the file"""
    description: str
    """the leading comment lines of the file, without '#'"""
    ok: bool | None
    """whether the preset validates (paths checked); None when it was listed without checking"""
    problems: list[str] = field(default_factory=list)
    """what is wrong with it, one line per problem"""


class ConfigError(Exception):
    """A preset or override that cannot make a valid run, with every problem found.

    ``problems`` holds one ``"field.path: message"`` line per problem; ``str(e)`` is a
    single message listing them all, fit to show to a user as is.
    """

    def __init__(self, problems: Iterable[str] | str, source: str = "config"):
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__(self.message)

    @property
    def message(self) -> str:
        n = len(self.problems)
        head = f"{self.source} has {n} problem{'' if n == 1 else 's'}:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return (type(self), (self.problems, self.source))


# --------------------------------------------------------------------------- as plain data


def config_to_dict(cfg: RunConfig) -> dict:
    """The config as plain data, in preset shape; ``config_from_dict`` reads it back."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML (what a run directory's config.yaml holds)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)
