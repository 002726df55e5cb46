"""Sharded parameters (FSDP2, set up by ``accelerate launch`` with an FSDP config).

FSDP splits every parameter, its gradient and its optimizer state across the ranks, so a
rank holds 1/N of the training state. The update's forward and backward gather each layer's
weights as they reach it and scatter its gradients back: one collective per layer, so every
rank must make the same forward calls in the same order.

Sampling with the model makes a different number of forward calls on each rank (a rank
stops when its completions end), and ranked evaluation runs on rank 0 alone. Those stretches
run inside :func:`full_weights`: every rank gathers the whole model once, forwards need no
collective, and the shards come back at the end (memory: the whole weights while sampling,
as with any generation from a sharded model). When another engine samples (vLLM), nothing
is gathered for the round: the log-prob passes run one forward per micro-batch on every rank
(:func:`in_step_forwards`), and the weights are gathered only to be sent to the engine.

Saving needs the whole tensors too: :func:`full_state_dict` and :func:`full_optimizer_state`
gather them (a collective: every rank calls), and rank 0 writes them in the usual formats.

Without sharding every function here is the identity or a plain state dict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


try:
    from torch.distributed.fsdp import FSDPModule
except ImportError:  # a torch built without distributed support: nothing is ever sharded
    FSDPModule = ()


def fsdp_modules(model: torch.nn.Module) -> list:
    """The FSDP units of ``model`` (the root and each wrapped layer); empty when unsharded."""
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` (the root, as accelerate prepared it) is sharded by FSDP: one check,
    cheap enough for every forward."""
    return isinstance(model, FSDPModule)


def in_step_forwards(model: torch.nn.Module) -> bool:
    """Whether forwards through ``model`` must be the same on every rank: sharded, and not
    inside :func:`full_weights` (each forward gathers layer by layer)."""
    return is_sharded(model) and not getattr(model, "_grpo_full_weights", False)


@contextlib.contextmanager
def full_weights(model: torch.nn.Module) -> Iterator[None]:
    """Every rank holds ``model``'s whole weights inside the block; forwards make no collective.

    A collective on entry (every rank enters at the same point); nested use is a no-op. On
    exit the shards come back and each unit resharding after forward is as it was."""
    units = fsdp_modules(model)
    if not units or getattr(model, "_grpo_full_weights", False):
        yield
        return
    settings = _reshard_settings(units)
    try:
        for unit in units:
            unit.unshard()
            unit.set_reshard_after_forward(False, recurse=False)
        model._grpo_full_weights = True
        yield
    finally:
        model._grpo_full_weights = False
        _restore_reshard_settings(settings)
        for unit in units:
            unit.reshard()


def _reshard_settings(units: list) -> list:
    """Whether each FSDP parameter group reshards after forward, read after FSDP's one-time
    set-up (which exempts the root when resharding was left to FSDP): there is no public
    getter, and ``set_reshard_after_forward`` cannot express the root's exemption."""
    states = [unit._get_fsdp_state() for unit in units]
    root = states[0]  # model.modules() lists the root first
    if getattr(root, "_is_root", True) is None:
        root._lazy_init()  # what the first forward would do
    return [(state, state._auto_reshard_after_forward, [(g, g.post_forward_mesh_info) for g in _param_groups(state)])
            for state in states]


def _param_groups(state) -> list:
    groups = getattr(state, "_fsdp_param_groups", None)  # torch 2.9+: a unit may hold several
    if groups is None:
        group = getattr(state, "_fsdp_param_group", None)
        groups = [group] if group is not None else []
    return groups


def _restore_reshard_settings(settings: list) -> None:
    for state, auto, groups in settings:
        state._auto_reshard_after_forward = auto
        for group, info in groups:
            group.post_forward_mesh_info = info


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a (possibly sharded) one: the gradient norm over every shard, a
    whole weight (a collective for a sharded tensor)."""
    full = getattr(tensor, "full_tensor", None)
    return full() if callable(full) else tensor


def _full_on_rank0():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """Under FSDP, the whole weights by name on CPU on rank 0 (empty on the others; a
    collective); None when unsharded (``save_pretrained`` reads the model itself)."""
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_on_rank0())


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state to save: under FSDP the whole state keyed by parameter name, on
    rank 0 (empty on the others; a collective); otherwise ``optimizer.state_dict()``."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return {"sharded_by_name": True, "state": get_optimizer_state_dict(model, optimizer, options=_full_on_rank0())}


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Restore what :func:`full_optimizer_state` returned, whichever setup wrote it: every
    rank reads the whole state and, under FSDP, keeps its shards. A sharded run's checkpoint
    resumes unsharded (one process, DDP) and the other way round."""
    by_name = isinstance(saved, dict) and saved.get("sharded_by_name", False)
    name_of = {id(p): name for name, p in model.named_parameters()}
    names = [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]  # its indices' order
    if by_name:
        state = saved["state"]
    else:  # by position: the optimizer's order, or the model's for a state written in one group
        one_group = len(saved["param_groups"]) == 1 < len(optimizer.param_groups)
        state = _by_parameter_name(saved, [n for n, p in model.named_parameters() if p.requires_grad]
                                   if one_group else names)
    state = _in_groups_of(optimizer, state, names)
    if not is_sharded(model):
        optimizer.load_state_dict(_by_index(state, names))
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))


def _in_groups_of(optimizer: torch.optim.Optimizer, state: dict, names: list[str]) -> dict:
    """A state by parameter name in ``optimizer``'s groups. A checkpoint written before weight decay
    spared biases and norms holds one group: each group now keeps its hyperparameters (the
    learning rate the schedule reached among them) with its own ``weight_decay``."""
    saved = state["param_groups"]
    if len(saved) != 1 or len(optimizer.param_groups) == 1:
        return state
    groups, start = [], 0
    for group in optimizer.param_groups:
        count = len(group["params"])
        groups.append({**saved[0], "weight_decay": group["weight_decay"], "params": names[start:start + count]})
        start += count
    return {**state, "param_groups": groups}


def _by_parameter_name(state: dict, names: list[str]) -> dict:
    """``optimizer.state_dict()`` (parameters by position) keyed by parameter name instead."""
    return {"state": {names[i]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}


def _by_index(state: dict, names: list[str]) -> dict:
    """The inverse of :func:`_by_parameter_name`: what ``optimizer.load_state_dict`` takes."""
    index = {name: i for i, name in enumerate(names)}
    return {"state": {index[n]: s for n, s in state["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]]}
