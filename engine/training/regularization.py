"""The state behind the terms added to the policy loss (:mod:`engine.algo.regularizers`): the
entropy coefficient that adaptive control moves from step to step, and the router loss
coefficient a mixture-of-experts model brings with it.
"""

from __future__ import annotations

import math

import torch

from engine.algo import regularizers
from engine.config.schema import ConfigError


def router_aux_coef(cfg, model) -> float:
    """The weight of the router's load-balancing loss (0 = not added), as TRL decides it:
    ``router_aux_loss_coef`` when set, else the model config's own (0 when it declares none);
    only a model whose config has ``output_router_logits`` (a router that reports its loss)
    gets one. Setting a nonzero weight for any other model is a :class:`ConfigError`."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    has_router = hasattr(text_config, "output_router_logits")
    coef = cfg.router_aux_loss_coef
    if coef and not has_router:
        raise ConfigError([f"router_aux_loss_coef: set to {coef:g}, but {type(model).__name__} is not a "
                           f"mixture-of-experts model that reports its router loss; leave it unset"])
    if not has_router:
        return 0.0
    return float(getattr(text_config, "router_aux_loss_coef", 0.0) or 0.0) if coef is None else float(coef)


class EntropyControl:
    """The entropy bonus's coefficient over a run (TRL's ``entropy_coef`` state).

    Static (``use_adaptive_entropy`` off): ``cfg.entropy_coef``, read at each step so a live
    adjustment applies from the next one. Adaptive: starts at ``entropy_coef`` and moves by
    :func:`~engine.algo.regularizers.adapt_entropy_coef` after each optimizer step from the
    step's mean token entropy over every process; a live adjustment of ``entropy_coef``
    restarts it from the new value. The bonus applies the coefficient fixed at the end of the
    previous step (:meth:`in_effect`), so every micro-batch of a step applies the same."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.coef = float(cfg.entropy_coef)
        self._seen = self.coef  # cfg.entropy_coef as last read: a change is a live adjustment
        self.last_entropy = math.inf  # no step measured yet: adaptive control applies nothing
        self._window = torch.zeros(2, dtype=torch.float64)  # [entropy sum, tokens] of this step
        self._resumed = False

    @property
    def enabled(self) -> bool:
        """Whether the bonus is part of the loss: a nonzero coefficient, or adaptive control."""
        return self.cfg.use_adaptive_entropy or self.cfg.entropy_coef != 0.0

    def in_effect(self) -> float:
        """The coefficient micro-batches of this step apply."""
        if self.cfg.entropy_coef != self._seen:
            self.coef = self._seen = float(self.cfg.entropy_coef)
        if not self.cfg.use_adaptive_entropy:
            self.coef = float(self.cfg.entropy_coef)
        return regularizers.entropy_coef_in_effect(self.coef, self.last_entropy, adaptive=self.cfg.use_adaptive_entropy,
                                                   entropy_target=self.cfg.entropy_target)

    def observe(self, entropies: torch.Tensor, mask: torch.Tensor) -> None:
        """Count a micro-batch's entropies over the tokens the bonus acted on."""
        m = mask.detach().to(entropies.dtype)
        self._window += torch.stack([(entropies.detach() * m).sum(), m.sum()]).double().cpu()

    def resume(self, train_state) -> None:
        """Before the first step: take up a resumed run's adaptive state (its checkpoint's
        :attr:`~engine.training.checkpointing.TrainState.entropy_control`)."""
        if not self._resumed:
            self._resumed = True
            self.restore(train_state.entropy_control)

    def end_step(self, dist, train_state=None) -> dict[str, float]:
        """At the optimizer step's end: adapt the coefficient (adaptive control) from the
        step's entropy over every process, and keep it in ``train_state`` for checkpoints;
        the metric ``entropy_coef`` when the bonus is on."""
        if not self.enabled:
            self._window.zero_()
            return {}
        if self.cfg.use_adaptive_entropy:
            total, tokens = dist.sum(self._window.clone()).tolist()
            entropy = total / max(tokens, 1.0)
            cfg = self.cfg
            self.coef = regularizers.adapt_entropy_coef(
                self.coef, entropy, entropy_target=cfg.entropy_target, entropy_coef_delta=cfg.entropy_coef_delta,
                entropy_coef_min=cfg.entropy_coef_min, entropy_coef_max=cfg.entropy_coef_max)
            self.last_entropy = entropy
            if train_state is not None:
                train_state.entropy_control = self.state()
        self._window.zero_()
        return {"entropy_coef": self.coef}

    def state(self) -> dict[str, float]:
        """What a checkpoint keeps (TRL's ``entropy_ctrl_state.json``)."""
        return {"entropy_coef": self.coef, "last_world_entropy": self.last_entropy}

    def restore(self, state: dict | None) -> None:
        if state and self.cfg.use_adaptive_entropy:
            self.coef = float(state["entropy_coef"])
            self.last_entropy = float(state["last_world_entropy"])
