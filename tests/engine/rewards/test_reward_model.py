"""Reward models (``model:<id or path>`` in reward_funcs) scored with a tiny classifier built here."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_MODEL
from engine.config.schema import ConfigError
from engine.config.checks import config_from_dict
from engine.rewards.scoring import (
    RewardSpecError,
    build_reward_funcs,
    check_reward_spec,
    clear_reward_model_cache,
    reward_model_name,
    score,
)


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    """A 2-label LlamaForSequenceClassification with the bundled tokenizer, saved as ``my-rm``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        num_labels=2, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).eval()
    path = tmp_path_factory.mktemp("rm") / "my-rm"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    yield path, model, tok
    clear_reward_model_cache()


def first_logit(model, ids: list[int]) -> float:
    """The classifier's first logit for one unpadded sequence: what a row must score."""
    with torch.no_grad():
        return float(model(torch.tensor([ids])).logits[0, 0])


def test_scores_plain_prompts_with_first_logit_batched(tiny_rm):
    path, model, tok = tiny_rm
    (func,) = build_reward_funcs([f"model:{path}"], reward_kwargs={"my-rm": {"batch_size": 2}})
    assert func.name == "my-rm"
    prompts = ["12+34=", "1+1=", "99+99="]
    completions = ["46", "2", "1"]
    got = func.fn(prompts=prompts, completions=completions)
    # by hand: each text alone (no padding), with the tokenizer's own special tokens
    hand = [first_logit(model, tok(p + c)["input_ids"]) for p, c in zip(prompts, completions)]
    assert got == pytest.approx(hand, abs=1e-5)
    # the last row went through a batch of its own; the first two were padded together
    assert len(set(round(v, 6) for v in got)) == 3


def test_scores_conversational_prompts_through_the_chat_template(tiny_rm):
    path, model, tok = tiny_rm
    (func,) = build_reward_funcs([f"model:{path}"])
    prompts = [[{"role": "user", "content": "12+34="}], [{"role": "user", "content": "5+5="}]]
    completions = [[{"role": "assistant", "content": "46"}], [{"role": "assistant", "content": "10"}]]
    got = func.fn(prompts=prompts, completions=completions)
    texts = [tok.apply_chat_template(p + c, tokenize=False) for p, c in zip(prompts, completions)]
    assert texts[0] == "<bos>12+34=46"  # the bundled template: bos then the contents
    hand = [first_logit(model, tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert got == pytest.approx(hand, abs=1e-5)


def test_score_puts_reward_model_beside_other_functions(tiny_rm):
    path, model, tok = tiny_rm
    funcs = build_reward_funcs(["format", f"model:{path}"])
    batch = score(funcs, [1.0, 0.5], ["1+1="], ["2"], {}, [[5]], step=1)
    rm = first_logit(model, tok("1+1=2")["input_ids"])
    assert batch.per_func[0].tolist() == pytest.approx([0.0, rm], abs=1e-5)
    assert float(batch.total[0]) == pytest.approx(0.5 * rm, abs=1e-5)
    assert not batch.errors


def test_weights_load_once_and_on_the_given_device(tiny_rm):
    path, _, _ = tiny_rm
    (a,) = build_reward_funcs([f"model:{path}"], device="cpu")
    (b,) = build_reward_funcs([f"model:{path}"], device=torch.device("cpu"))
    assert a.fn.model is b.fn.model
    assert next(a.fn.model.parameters()).device.type == "cpu"
    assert not any(p.requires_grad for p in a.fn.model.parameters())


def test_specs_are_checked_without_loading(tiny_rm, tmp_path):
    path, _, _ = tiny_rm
    assert check_reward_spec(f"model:{path}") is None
    assert check_reward_spec("model:OpenAssistant/reward-model-deberta-v3-large-v2") is None  # hub id: not asked offline
    assert "folder not found" in check_reward_spec("model:./no-such-rm")
    (tmp_path / "empty").mkdir()
    assert "no config.json" in check_reward_spec(f"model:{tmp_path / 'empty'}")
    assert "name a model" in check_reward_spec("model:")


def test_metric_name_is_the_folder_or_repo_name():
    assert reward_model_name("model:OpenAssistant/reward-model-deberta-v3-large-v2") == "reward-model-deberta-v3-large-v2"
    assert reward_model_name("model:./my-rm/") == "my-rm"
    assert reward_model_name("model:gpt2") == "gpt2"


def test_config_accepts_model_specs_and_their_options(tiny_rm, tmp_path):
    path, _, _ = tiny_rm
    cfg = config_from_dict({"reward_funcs": ["accuracy", f"model:{path}"], "reward_kwargs": {"my-rm": {"batch_size": 4}}})
    assert cfg.reward_funcs[1] == f"model:{path}"
    cfg = config_from_dict({"reward_funcs": ["model:OpenAssistant/reward-model-deberta-v3-large-v2"]})
    assert cfg.reward_funcs == ["model:OpenAssistant/reward-model-deberta-v3-large-v2"]
    # relative paths resolve against the preset's folder and are stored absolute
    cfg = config_from_dict({"reward_funcs": ["model:my-rm"]}, base_dir=path.parent)
    assert cfg.reward_funcs == [f"model:{path}"]
    with pytest.raises(ConfigError) as err:
        config_from_dict({
            "reward_funcs": [f"model:{path}", "model:./missing-rm"],
            "reward_kwargs": {"my-rm": {"batch_sise": 4}},
        }, base_dir=tmp_path)
    text = str(err.value)
    assert "reward model not found: ./missing-rm" in text
    assert "did you mean 'batch_size'?" in text


def test_a_model_that_cannot_load_is_one_clear_line():
    with pytest.raises(RewardSpecError) as err:
        build_reward_funcs(["model:nobody-has/this-reward-model"])
    message = str(err.value)
    assert message.startswith("reward model 'model:nobody-has/this-reward-model' could not be loaded")
    assert "\n" not in message
