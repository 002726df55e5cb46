"""final/README.md: the model card the Hub shows for a trained model.

The Hub reads its YAML front matter (``library_name``, ``base_model``, ``tags``, ``datasets``) to
file the model under its base model and dataset, and the body says what a reader needs to trust
or reproduce it: what was trained on what, with which rewards, how far, what it scored before and
after, and the command that trains it again.
"""

from __future__ import annotations

import shlex
from pathlib import Path

CARD_FILE = "README.md"
TAGS = ["grpo", "grpo-tui"]


def _hub_id(name: str | None) -> str | None:
    """``name`` when it reads as a Hub id (``owner/name``, not a folder here); None otherwise."""
    if not name or Path(name).expanduser().exists() or name.startswith((".", "/", "~")):
        return None
    parts = name.split("/")
    return name if len(parts) == 2 and all(parts) else None


def _reward_name(spec) -> str:
    if isinstance(spec, dict):
        return str(spec.get("name") or spec.get("path") or spec.get("function") or spec)
    return str(spec)


def _dataset_line(dataset) -> str:
    if dataset.task:
        args = ", ".join(f"{k}={v}" for k, v in (dataset.task_args or {}).items())
        return f"built-in task `{dataset.task}`" + (f" ({args})" if args else "")
    if dataset.name:
        config = f", config `{dataset.config}`" if dataset.config else ""
        return f"[`{dataset.name}`](https://huggingface.co/datasets/{dataset.name}){config}, split `{dataset.split}`"
    return f"local file `{dataset.path}`"


def _accuracy(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def model_card_text(cfg, *, run_dir: str | Path, steps: int, accuracy_before=None, accuracy_after=None) -> str:
    """The card as text: YAML front matter, then the training record in markdown."""
    from huggingface_hub import ModelCardData

    base = _hub_id(cfg.model_name_or_path)
    dataset = _hub_id(cfg.dataset.name)
    adapter = cfg.peft is not None and not cfg.peft.get("merge_on_save")
    data = ModelCardData(library_name="peft" if adapter else "transformers", base_model=base, tags=list(TAGS),
                         datasets=[dataset] if dataset else None)
    name = Path(run_dir).name
    start = "a new model of the architecture of" if cfg.model_init == "random" else "fine-tuned from"
    rewards = ", ".join(f"`{_reward_name(r)}`" for r in cfg.reward_funcs) or "the ranks given with the dataset"
    weights = f" (weights {cfg.reward_weights})" if cfg.reward_weights else ""
    what = "A LoRA adapter" if adapter else "A model"
    config_yaml = Path(run_dir) / "config.yaml"
    command = f"grpo-tui train {shlex.quote(str(config_yaml))}"
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {name}", "",
        f"{what} trained with GRPO by grpo-tui, {start} `{cfg.model_name_or_path}`.", "",
        "## Training", "",
        f"- **Base model:** `{cfg.model_name_or_path}`",
        f"- **Dataset:** {_dataset_line(cfg.dataset)}",
        f"- **Reward functions:** {rewards}{weights}",
        f"- **Steps:** {steps} of {cfg.max_steps} (learning rate {cfg.learning_rate}, "
        f"{cfg.num_generations} completions per prompt, beta {cfg.beta})",
        f"- **Held-out greedy accuracy:** {_accuracy(accuracy_before)} before → {_accuracy(accuracy_after)} after", "",
        "## Reproduce", "",
        "The run's whole config is its `config.yaml`; this trains the same model again:", "",
        "```bash", command, "```", "",
        "## Use", "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/final")',
        'model = AutoModelForCausalLM.from_pretrained("path/to/final")',
        "```", "",
    ]
    return "\n".join(lines)


def write_model_card(path: str | Path, cfg, **figures) -> None:
    """Write ``README.md`` into the final/ folder being saved (see ``model_card_text``)."""
    (Path(path) / CARD_FILE).write_text(model_card_text(cfg, **figures), encoding="utf-8")
