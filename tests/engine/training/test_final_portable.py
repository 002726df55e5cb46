"""final/ loads outside this process: with transformers 4.x as with 5.x, and it carries a model card."""

import json

import yaml

from engine.config.schema import DatasetConfig, RunConfig
from engine.training.model_card import model_card_text
from engine.training.model_loading import RUN_LOCAL_TOKENIZER_KEYS, portable_tokenizer_config

# tokenizer classes transformers 4.56 can resolve by name: the generic fast tokenizer, or a
# model-specific one (AutoTokenizer tries "<name>Fast" first); never transformers 5's TokenizersBackend
GENERIC_FAST = "PreTrainedTokenizerFast"


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_final_tokenizer_config_has_no_run_local_keys_and_a_class_transformers_4_knows(short_run):
    trainer, _ = short_run
    config = json.loads((trainer.run_dir / "final" / "tokenizer_config.json").read_text())
    assert not set(RUN_LOCAL_TOKENIZER_KEYS) & set(config), config
    assert config["tokenizer_class"] == GENERIC_FAST


def test_final_loads_with_auto_classes(short_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trainer, _ = short_run
    final = trainer.run_dir / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final)
    assert tokenizer("1+2=").input_ids and model.config.vocab_size >= len(tokenizer)


def test_final_carries_a_model_card(short_run):
    trainer, _ = short_run
    card = (trainer.run_dir / "final" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "transformers" and meta["tags"] == ["grpo", "grpo-tui"]
    before, after = trainer.summary["eval_accuracy_before"], trainer.summary["eval_accuracy_after"]
    assert f"{before:.3f} before → {after:.3f} after" in card
    assert "built-in task `arithmetic`" in card and "`accuracy`" in card
    assert f"**Steps:** {trainer.summary['steps']} of" in card
    assert f"grpo-tui train {trainer.run_dir / 'config.yaml'}" in card


def test_portable_tokenizer_config_rewrites_what_transformers_5_saves(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "TokenizersBackend", "local_files_only": True, "is_local": True, "eos_token": "<eos>"}))
    portable_tokenizer_config(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config == {"tokenizer_class": GENERIC_FAST, "eos_token": "<eos>"}


def test_portable_tokenizer_config_keeps_a_model_specific_class(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Qwen2Tokenizer"}))
    portable_tokenizer_config(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "Qwen2Tokenizer"


def test_model_card_names_hub_base_model_and_dataset(tmp_path):
    cfg = RunConfig(model_name_or_path="Qwen/Qwen2.5-0.5B-Instruct", dataset=DatasetConfig(name="openai/gsm8k", config="main"),
                    reward_funcs=["accuracy", "format"], reward_weights=[1.0, 0.5], max_steps=10)
    card = model_card_text(cfg, run_dir=tmp_path / "gsm8k-run", steps=10, accuracy_before=0.25, accuracy_after=None)
    meta = _front_matter(card)
    assert meta["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct" and meta["datasets"] == ["openai/gsm8k"]
    assert "`accuracy`, `format` (weights [1.0, 0.5])" in card
    assert "0.250 before → n/a after" in card
    assert "# gsm8k-run" in card


def test_model_card_of_a_lora_adapter_files_it_under_peft(tmp_path):
    adapter = RunConfig(model_name_or_path="Qwen/Qwen2.5-0.5B-Instruct", peft={"r": 8})
    merged = RunConfig(model_name_or_path="Qwen/Qwen2.5-0.5B-Instruct", peft={"r": 8, "merge_on_save": True})
    card = model_card_text(adapter, run_dir=tmp_path, steps=1)
    assert _front_matter(card)["library_name"] == "peft" and "A LoRA adapter trained with GRPO" in card
    assert _front_matter(model_card_text(merged, run_dir=tmp_path, steps=1))["library_name"] == "transformers"
