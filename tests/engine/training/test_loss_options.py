"""TRL 1.16's loss types and loss options in real runs: each chosen from a preset or the
Python API takes effect (its metric is logged, its loss differs from dapo's on the same first
batch), the entropy bonus is in the loss and adjustable live, and a mixture-of-experts model's
router loss is added."""

from __future__ import annotations

import json
import queue
import shutil
from pathlib import Path

import pytest

from conftest import TINY_MODEL, tiny_config, train
from engine.config.schema import ConfigError

pytestmark = pytest.mark.slow


def metrics_of(cfg) -> list[dict]:
    rows = [json.loads(line) for line in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r]


def two_steps(tmp_path: Path, *overrides: str) -> list[dict]:
    cfg = tiny_config(tmp_path, "max_steps=2", "beta=0", *overrides)
    train(cfg, evaluate=False)
    return metrics_of(cfg)


@pytest.fixture(scope="module")
def dapo_first_loss(tmp_path_factory) -> float:
    return two_steps(tmp_path_factory.mktemp("dapo"))[0]["loss"]


@pytest.mark.parametrize("loss_type, overrides, own_metric, absent", [
    ("cispo", ("epsilon_high=5.0",), "cispo_clip_ratio", "clip_ratio/region_mean"),
    ("sapo", ("sapo_temperature_neg=2.0",), None, "clip_ratio/region_mean"),
    ("luspo", ("importance_sampling_level=sequence",), "clip_ratio/region_mean", "cispo_clip_ratio"),
    ("vespo", ("vespo_lambda_neg=1.5",), "vespo/phi_seq_mean", "clip_ratio/region_mean"),
])
def test_each_loss_type_from_a_preset_takes_effect(tmp_path, dapo_first_loss, loss_type, overrides, own_metric, absent):
    """Same seed, same model: the first round's completions are dapo's, so a different loss on
    it shows the loss type (and its option) reached the update."""
    rows = two_steps(tmp_path, f"loss_type={loss_type}", *overrides)
    assert len(rows) == 2
    if own_metric:
        assert own_metric in rows[0]
    assert absent not in rows[0]
    assert rows[0]["loss"] != pytest.approx(dapo_first_loss, rel=1e-3)


def test_loss_options_through_the_python_api():
    from engine.api import GRPOConfig

    args = GRPOConfig(output_dir="unused", loss_type="vespo", vespo_k_pos=1.5, entropy_coef=0.01,
                      use_adaptive_entropy=True, entropy_target=3.0, off_policy_mask_threshold=0.5,
                      router_aux_loss_coef=0.0, sapo_temperature_pos=0.9)
    assert (args.loss_type, args.vespo_k_pos, args.entropy_target, args.off_policy_mask_threshold) == ("vespo", 1.5, 3.0, 0.5)
    with pytest.raises(ConfigError, match="did you mean 'cispo'"):
        GRPOConfig(output_dir="unused", loss_type="cisp")
    with pytest.raises(ConfigError, match="entropy_coef_min: 0.5 is above entropy_coef_max"):
        GRPOConfig(output_dir="unused", entropy_coef_min=0.5, entropy_coef_max=0.1)


def test_the_entropy_bonus_is_in_the_loss(tmp_path):
    """One micro-batch a step, every token: loss = policy_loss − c·H̄ with H̄ the logged entropy."""
    rows = two_steps(tmp_path, "entropy_coef=0.05")
    for row in rows:
        assert row["entropy_coef"] == 0.05
        assert row["loss"] == pytest.approx(row["policy_loss"] - 0.05 * row["entropy"], abs=1e-5)


def test_adaptive_entropy_control_moves_and_applies_the_coefficient(tmp_path):
    """Target 10 nats (the tiny model is far below): the coefficient rises by Δ after each step
    (0 → .01 → .02) and applies from the step after the first measurement."""
    rows = two_steps(tmp_path, "use_adaptive_entropy=true", "entropy_target=10", "entropy_coef_delta=0.01")
    assert [r["entropy_coef"] for r in rows] == pytest.approx([0.01, 0.02])
    assert rows[0]["loss"] == pytest.approx(rows[0]["policy_loss"], abs=1e-6)  # nothing measured yet
    assert rows[1]["loss"] == pytest.approx(rows[1]["policy_loss"] - 0.01 * rows[1]["entropy"], abs=1e-5)


def test_entropy_coef_is_adjustable_live(tmp_path):
    from engine.run.control import Control
    from engine.run.events import LogEvent, StepMetrics
    from engine.training.trainer import Trainer

    cfg = tiny_config(tmp_path, "max_steps=400", "entropy_coef=0.01")
    control = Control()
    events: queue.Queue = queue.Queue()
    control.subscribe(events.put)
    trainer = Trainer(cfg, control=control, evaluate=False)
    thread = trainer.start()

    def wait(predicate):
        while True:
            event = events.get(timeout=120)
            if predicate(event):
                return event

    try:
        wait(lambda e: isinstance(e, StepMetrics))
        control.adjust(entropy_coef=0.2)
        adjusted = wait(lambda e: isinstance(e, LogEvent) and e.category == "adjust")
        assert adjusted.data == {"entropy_coef": 0.2}
        step = wait(lambda e: isinstance(e, StepMetrics) and e.metrics.get("entropy_coef") == 0.2)
        m = step.metrics
        assert m["loss"] == pytest.approx(m["policy_loss"] - 0.2 * m["entropy"], abs=1e-5)
    finally:
        control.stop()
        thread.join(120)


def tiny_moe(folder: Path, router_aux_loss_coef: float) -> Path:
    """A mixture-of-experts model folder with the bundled tokenizer: a Mixtral config small
    enough to initialise at random in a second (model_init: random), nothing downloaded."""
    from transformers import MixtralConfig

    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy(TINY_MODEL / name, folder / name)
    MixtralConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=128,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  router_aux_loss_coef=router_aux_loss_coef).save_pretrained(folder)
    return folder


def test_a_mixture_of_experts_router_loss_is_added(tmp_path):
    """Untrained and on-policy, the policy loss of the first step is ≈ 0, so the loss is the
    router's: coefficient × aux_loss — the model config's 0.02, or the preset's 0.5."""
    moe = tiny_moe(tmp_path / "moe", router_aux_loss_coef=0.02)
    for coef, overrides in ((0.02, ()), (0.5, ("router_aux_loss_coef=0.5",))):
        rows = two_steps(tmp_path / str(coef), f"model_name_or_path={moe}", "model_init=random", *overrides)
        first = rows[0]
        assert first["aux_loss"] > 0
        assert first["loss"] == pytest.approx(coef * first["aux_loss"], abs=2e-3)
    off = two_steps(tmp_path / "off", f"model_name_or_path={moe}", "model_init=random", "router_aux_loss_coef=0")
    assert "aux_loss" not in off[0]


def test_a_router_loss_for_a_model_without_a_router_is_refused(tmp_path):
    from engine.training.regularization import router_aux_coef
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(tmp_path, "router_aux_loss_coef=0.01")
    with pytest.raises(ConfigError, match="router_aux_loss_coef: set to 0.01, but LlamaForCausalLM is not"):
        router_aux_coef(cfg, AutoModelForCausalLM.from_pretrained(TINY_MODEL))
    cfg.router_aux_loss_coef = None
    assert router_aux_coef(cfg, AutoModelForCausalLM.from_pretrained(TINY_MODEL)) == 0.0


def test_adaptive_entropy_control_resumes_where_it_was(tmp_path):
    """Checkpointed after step 2 of 3 at coefficient .02 (Δ .01, entropy always under the
    10-nat target): the resumed step 3 goes on to .03, as the uninterrupted run does,
    rather than restarting from 0."""
    from engine.training.trainer import Trainer

    cfg = tiny_config(tmp_path, "max_steps=3", "save_steps=2", "beta=0", "use_adaptive_entropy=true",
                      "entropy_target=10", "entropy_coef_delta=0.01")
    trainer, _ = train(cfg, evaluate=False)
    whole = metrics_of(cfg)
    assert [r["entropy_coef"] for r in whole] == pytest.approx([0.01, 0.02, 0.03])
    resumed = tmp_path / "resumed"
    shutil.copytree(trainer.run_dir, resumed)
    shutil.rmtree(resumed / "final", ignore_errors=True)
    Trainer.resume(resumed, evaluate=False).run()
    rows = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    third = [r for r in rows if r.get("step") == 3 and "loss" in r][-1]
    assert third["entropy_coef"] == pytest.approx(0.03)
    assert third["loss"] == pytest.approx(whole[2]["loss"], abs=1e-6)


def test_vespo_with_a_sequence_level_vllm_correction_is_refused():
    """VESPO folds the sampler's per-token ratios into its own weight (TRL refuses the rest)."""
    from engine.config.checks import config_from_dict

    with pytest.raises(ConfigError, match="vllm_importance_sampling_mode: loss_type vespo folds the correction"):
        config_from_dict({"loss_type": "vespo", "use_vllm": True}, check_paths=False)
    cfg = config_from_dict({"loss_type": "vespo", "use_vllm": True, "vllm_importance_sampling_mode": "token_mask"},
                           check_paths=False)
    assert cfg.loss_type == "vespo"


def test_the_off_policy_mask_reaches_the_update(tmp_path):
    """μ = 2: the second update reuses the round after the first moved the weights, so
    sequences have drifted; with threshold 0 every negative-advantage sequence that drifted
    at all leaves the loss, which changes it. The first update (no drift yet) is the same."""
    common = ("num_iterations=2", "learning_rate=1e-3")
    plain = two_steps(tmp_path / "plain", *common)
    masked = two_steps(tmp_path / "masked", *common, "off_policy_mask_threshold=0")
    assert masked[0]["loss"] == pytest.approx(plain[0]["loss"], abs=1e-7)
    assert masked[1]["loss"] != pytest.approx(plain[1]["loss"], abs=1e-4)
