"""Loading the policy, its tokenizer and the frozen reference model."""

from __future__ import annotations

import contextlib
import warnings

import torch


def pick_device() -> torch.device:
    """The accelerator when there is one, else the CPU (through accelerate, which knows them all)."""
    from engine.parallel.distributed import process_state

    return process_state().device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on a GPU that supports it and float32 elsewhere (CPU training in fp32)."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


_TOKENIZER_KEYS = ("revision", "trust_remote_code", "subfolder", "cache_dir", "local_files_only")
_HUB_KEYS = ("revision", "subfolder")  # where in a hub repository: not for a checkpoint folder


def init_kwargs(cfg, checkpoint: bool = False) -> dict:
    """``model_init_kwargs`` for from_pretrained; for a run's own checkpoint folder without the
    keys that pick a place in a hub repository."""
    kwargs = dict(getattr(cfg, "model_init_kwargs", None) or {})
    return {k: v for k, v in kwargs.items() if not (checkpoint and k in _HUB_KEYS)}


def load_tokenizer(path: str, **kwargs):
    """The tokenizer at ``path``; ``kwargs``: ``model_init_kwargs``, of which the tokenizer takes the
    hub revision, remote code and cache options."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, **{k: v for k, v in kwargs.items() if k in _TOKENIZER_KEYS})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # common for base models; completions are masked anyway
    return tokenizer


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every token id that ends a completion: the tokenizer's EOS and the generation config's."""
    ids = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if not ids:
        raise ValueError("the tokenizer has no EOS token: completions could never end")
    return sorted(ids)


def load_model_and_tokenizer(cfg, device: torch.device, path=None):
    """The policy and tokenizer from ``model_name_or_path`` (or ``path``: a checkpoint to resume)."""
    from transformers import AutoModelForCausalLM

    source = str(path) if path is not None else cfg.model_name_or_path
    tokenizer = load_tokenizer(source, **init_kwargs(cfg, checkpoint=path is not None))
    dtype = resolve_dtype(cfg.torch_dtype, device)
    if cfg.peft is not None:  # the base is always the starting weights; a checkpoint holds only the adapter
        model = with_lora(starting_model(cfg, dtype), cfg.peft, adapter_path=path)
    elif path is not None:  # a checkpoint is a save_pretrained folder, whatever the run started from
        model = from_pretrained(AutoModelForCausalLM, source, dtype, init_kwargs(cfg, checkpoint=True))
    else:
        model = starting_model(cfg, dtype)
    model.to(device)
    prepare_layers(model, cfg)
    if cfg.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable(dict(cfg.gradient_checkpointing_kwargs or {}) or None)  # the kwargs go to torch's checkpoint
        model.config.use_cache = False
    if cfg.torch_compile:
        compile_layers(model)
    model.train()
    return model, tokenizer


def starting_model(cfg, dtype: torch.dtype):
    """The weights a run starts from: those in ``model_name_or_path``, or with ``model_init:
    random`` a new model of its architecture (:func:`random_model`)."""
    from transformers import AutoModelForCausalLM

    if cfg.model_init == "random":
        return random_model(cfg, dtype)
    return from_pretrained(AutoModelForCausalLM, cfg.model_name_or_path, dtype, init_kwargs(cfg))


def from_pretrained(cls, source: str, dtype: torch.dtype, kwargs: dict):
    """``cls.from_pretrained`` with ``model_init_kwargs``; an attention kernel that is not
    installed (flash_attention_2 without flash-attn) is one :class:`ConfigError` line."""
    from engine.config.schema import ConfigError

    try:
        return cls.from_pretrained(source, dtype=dtype, **kwargs)
    except (ImportError, ValueError) as exc:
        kernel = kwargs.get("attn_implementation")
        if kernel is None or not (kernel in str(exc) or "ttention" in str(exc)):  # "FlashAttention2 ...", "sdpa ..."
            raise
        lines = str(exc).strip().splitlines()
        raise ConfigError(f"model_init_kwargs.attn_implementation: {kernel} cannot be used here: {lines[0][:300]}",
                          source="model_init_kwargs") from None


def prepare_layers(model, cfg) -> None:
    """TRL's layer options on a loaded model (the policy and the reference alike):
    ``use_liger_kernel`` (Liger's kernels patched into its layers), ``disable_dropout`` (every
    dropout module's p set to 0) and ``cast_lm_head_to_fp32`` (:func:`lm_head_in_fp32`)."""
    if getattr(cfg, "use_liger_kernel", False):
        from engine.config.schema import ConfigError

        try:
            from liger_kernel.transformers import _apply_liger_kernel_to_instance
        except ImportError:
            raise ConfigError("use_liger_kernel: needs the liger-kernel package (pip install liger-kernel, CUDA "
                              "only); or set use_liger_kernel: false", source="use_liger_kernel") from None
        inner = getattr(model, "get_base_model", lambda: model)()
        _apply_liger_kernel_to_instance(model=inner)
    if getattr(cfg, "disable_dropout", False):
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    if getattr(cfg, "cast_lm_head_to_fp32", False):
        lm_head_in_fp32(model)


class Float32Head(torch.nn.Linear):
    """A Linear output layer computing in float32 whatever its input's dtype (a class, not a patched
    forward, so a deep copy of the model, the reference, computes with its own weights)."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):  # bf16 autocast would round it again
            return torch.nn.functional.linear(hidden.float(), self.weight.float(),
                                              None if self.bias is None else self.bias.float())


def lm_head_in_fp32(model) -> None:
    """The output layer's weights and its matrix product in float32, whatever the rest's dtype:
    logits (and so log-probs) without bfloat16 rounding. With tied embeddings the input
    embedding's output is cast back to the model's dtype, so only the head changes."""
    from engine.config.schema import ConfigError

    inner = getattr(model, "get_base_model", lambda: model)()
    head = inner.get_output_embeddings()
    if type(head) is Float32Head:
        return
    if type(head) is not torch.nn.Linear:
        raise ConfigError("cast_lm_head_to_fp32: the output layer is not a plain Linear (a LoRA adapter on "
                          "lm_head?); take lm_head out of peft.target_modules or set cast_lm_head_to_fp32: false",
                          source="cast_lm_head_to_fp32")
    dtype = inner.get_input_embeddings().weight.dtype
    head.float()
    head.__class__ = Float32Head
    if getattr(inner.config, "tie_word_embeddings", False) and dtype != torch.float32:
        inner.get_input_embeddings().register_forward_hook(_cast_to(dtype))


def _cast_to(dtype: torch.dtype):
    def hook(module, args, output):
        return output.to(dtype)
    return hook


def random_model(cfg, dtype: torch.dtype):
    """A randomly initialised model of ``model_name_or_path``'s architecture with
    ``model_config_overrides`` applied, drawn from its own stream seeded with ``cfg.seed``.

    The same seed gives the same weights every time it is called, so the reference model (and
    a LoRA base after a resume) is the policy's starting point rebuilt rather than kept as a
    copy; the global random stream is left as it was, so the rest of the run samples the same
    whether it started here or from a checkpoint."""
    from transformers import AutoModelForCausalLM

    config = overridden_config(cfg.model_name_or_path, cfg.model_config_overrides, init_kwargs(cfg))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.name_or_path = cfg.model_name_or_path
    return model


def overridden_config(path: str, overrides: dict, kwargs: dict | None = None):
    """``path``'s config with ``overrides`` set; a key the config does not have raises one
    :class:`ConfigError` naming it. ``head_dim`` follows ``hidden_size / num_attention_heads``
    when either changes and it is not set itself: a config.json that spells it out (as the
    bundled model's does) would otherwise keep the old width per head."""
    import difflib

    from transformers import AutoConfig

    from engine.config.schema import ConfigError

    keys = ("revision", "trust_remote_code", "subfolder", "cache_dir", "local_files_only")
    config = AutoConfig.from_pretrained(path, **{k: v for k, v in (kwargs or {}).items() if k in keys})
    known = config.to_dict()
    problems = []
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"model_config_overrides.{key}: not a setting of {type(config).__name__}{hint}")
    if problems:
        raise ConfigError(problems, source="model_config_overrides")
    for key, value in overrides.items():
        setattr(config, key, value)
    heads = getattr(config, "num_attention_heads", None)
    if {"hidden_size", "num_attention_heads"} & set(overrides) and "head_dim" not in overrides and heads:
        if config.hidden_size % heads:
            raise ConfigError(f"model_config_overrides.hidden_size: {config.hidden_size} is not a multiple of "
                              f"num_attention_heads ({heads})", source="model_config_overrides")
        if getattr(config, "head_dim", None) is not None:
            config.head_dim = config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None)
    if heads and kv_heads and heads % kv_heads:
        raise ConfigError(f"model_config_overrides.num_key_value_heads: num_attention_heads ({heads}) is not a "
                          f"multiple of num_key_value_heads ({kv_heads})", source="model_config_overrides")
    return config


def compile_layers(model) -> int:
    """``torch_compile``: compile each decoder layer in place (regional compilation: one small
    graph reused by every layer, shapes dynamic, so varying lengths do not recompile).
    Returns how many layers were compiled (0 when the architecture has no layer list)."""
    import os
    import shutil

    if next(model.parameters()).device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        raise RuntimeError("torch_compile on CPU needs a C++ compiler (g++, or set CXX); install one or set "
                           "torch_compile: false")
    inner = getattr(model, "get_base_model", lambda: model)()
    layers = getattr(getattr(inner, "model", inner), "layers", None)
    if layers is None:
        return 0
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def load_reference_model(cfg, device: torch.device, copy_of=None):
    """A frozen copy of the starting weights for the KL penalty (made only when beta > 0).

    The starting weights again (:func:`starting_model`: loaded from ``model_name_or_path``, or
    the same seeded random initialisation), so a resumed run or β raised mid-run gets the start,
    not the current policy; a model object handed in directly (Python API) is deep-copied
    before training changes it."""
    import copy

    if copy_of is not None:
        ref = copy.deepcopy(copy_of)
    else:
        ref = starting_model(cfg, resolve_dtype(cfg.torch_dtype, device))
    ref.to(device).eval()
    if copy_of is None:
        prepare_layers(ref, cfg)
    ref.requires_grad_(False)
    return ref


@contextlib.contextmanager
def _peft_quietly():
    """peft reads an attribute transformers deprecated: a warning no user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield


def with_lora(model, options: dict, adapter_path=None):
    """Wrap ``model`` with a trainable LoRA adapter (new, or the one saved at ``adapter_path``).

    Only the adapter trains; the base weights stay frozen, and the base with the adapter
    switched off is the reference model, so none is loaded twice."""
    from peft import LoraConfig, PeftModel, get_peft_model

    with _peft_quietly():
        if adapter_path is not None:
            return PeftModel.from_pretrained(model, str(adapter_path), is_trainable=True)
        lora = LoraConfig(
            r=int(options.get("r", 16)),
            lora_alpha=float(options.get("lora_alpha", 32)),
            lora_dropout=float(options.get("lora_dropout", 0.0)),
            target_modules=options.get("target_modules", "all-linear"),
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)


def save_final(model, tokenizer, path, peft_options: dict | None, weights: dict | None = None) -> None:
    """``final/``: the full model in save_pretrained format; with LoRA the adapter, or the merged
    model when ``merge_on_save`` is set (loadable with AutoModelForCausalLM directly).
    ``weights``: the whole state dict when the model is sharded (gathered beforehand)."""
    if peft_options is not None and peft_options.get("merge_on_save"):
        if weights is not None:  # sharded: merge a CPU copy holding the gathered weights
            model, weights = _cpu_copy(model, weights), None
        model = model.merge_and_unload()
    model.save_pretrained(path, safe_serialization=True, state_dict=weights)
    tokenizer.save_pretrained(path)
    portable_tokenizer_config(path)


RUN_LOCAL_TOKENIZER_KEYS = ("local_files_only", "is_local", "cache_dir", "token", "use_auth_token", "revision",
                            "force_download", "proxies", "subfolder", "_commit_hash")
"""Keys transformers copies from this process's ``from_pretrained`` call into tokenizer_config.json:
they describe how the run loaded its tokenizer, not the tokenizer, and ``local_files_only: true``
would keep whoever loads final/ offline."""

TOKENIZER_CLASS_NAMES = {"TokenizersBackend": "PreTrainedTokenizerFast"}
"""transformers 5 names the generic fast tokenizer ``TokenizersBackend``; ``PreTrainedTokenizerFast``
is the same class to transformers 5 (an alias) and the only name transformers 4 knows."""


def portable_tokenizer_config(path) -> None:
    """Make final/'s tokenizer_config.json load with every transformers from 4.56 on (and vLLM):
    drop the run-local keys and name the tokenizer class as both major versions know it."""
    import json
    from pathlib import Path

    file = Path(path) / "tokenizer_config.json"
    if not file.is_file():
        return
    config = json.loads(file.read_text(encoding="utf-8"))
    for key in RUN_LOCAL_TOKENIZER_KEYS:
        config.pop(key, None)
    if config.get("tokenizer_class") in TOKENIZER_CLASS_NAMES:
        config["tokenizer_class"] = TOKENIZER_CLASS_NAMES[config["tokenizer_class"]]
    file.write_text(json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def _cpu_copy(model, weights: dict):
    """A model built like ``model`` (its LoRA adapter included) on the CPU, holding ``weights``."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base = model.get_base_model()
    copy = AutoModelForCausalLM.from_config(base.config, dtype=next(iter(weights.values())).dtype)
    with _peft_quietly():
        copy = get_peft_model(copy, model.peft_config[model.active_adapter])
    copy.load_state_dict(weights, strict=True)
    return copy




def mixed_precision(bf16: bool | None, device: torch.device, model) -> bool:
    """Whether the forward passes run under bfloat16 autocast (the weights stay as loaded).

    ``None`` (auto): on a CUDA GPU with bfloat16 support when the weights are float32; never
    on CPU, where autocast measured slower than float32 for small models."""
    if bf16 is not None:
        return bf16
    dtype = next(model.parameters()).dtype
    return device.type == "cuda" and torch.cuda.is_bf16_supported() and dtype == torch.float32
