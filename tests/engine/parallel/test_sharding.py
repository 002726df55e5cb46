"""Optimizer state across sharding setups, in one process (the sharded runs themselves are in
test_distributed.py, on two CPU processes)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine.parallel.sharding import full_optimizer_state, full_state_dict, is_sharded, load_optimizer_state
from tests.conftest import TINY_MODEL


def _stepped(seed: int):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.1)
    ids = torch.randint(0, model.config.vocab_size, (2, 6))
    model(input_ids=ids).logits.float().logsumexp(-1).mean().backward()
    optimizer.step()
    return model, optimizer


def test_an_unsharded_model_saves_and_loads_optimizer_state_as_torch_does():
    model, optimizer = _stepped(0)
    assert not is_sharded(model) and full_state_dict(model) is None  # save_pretrained reads the model itself
    saved = full_optimizer_state(model, optimizer)
    fresh_model, fresh = _stepped(1)
    load_optimizer_state(fresh_model, fresh, saved)
    for i, state in optimizer.state_dict()["state"].items():
        torch.testing.assert_close(fresh.state_dict()["state"][i]["exp_avg_sq"], state["exp_avg_sq"])


def test_optimizer_state_saved_by_parameter_name_loads_into_an_unsharded_model():
    """A sharded run saves the optimizer's state as torch's full state dict, keyed by
    parameter name; resuming it in one process puts every moment back on its own parameter."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    model, optimizer = _stepped(0)
    by_name = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    assert "model.layers.0.self_attn.q_proj.weight" in by_name["state"]
    fresh_model, fresh = _stepped(1)
    load_optimizer_state(fresh_model, fresh, {"sharded_by_name": True, "state": by_name})
    restored, original = fresh.state_dict(), optimizer.state_dict()
    assert restored["param_groups"][0]["weight_decay"] == pytest.approx(0.1)
    params = dict(fresh_model.named_parameters())
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for i, name in enumerate(names):
        moment = restored["state"][i]["exp_avg"]
        assert moment.shape == params[name].shape
        torch.testing.assert_close(moment, original["state"][i]["exp_avg"], msg=name)
