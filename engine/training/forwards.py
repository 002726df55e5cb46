"""The forward passes a run makes for log-probs, with the run's precision and sharding rules.

Three kinds: the training forward (gradients and entropies, through the DDP/FSDP wrapper),
whole rounds without gradients (the sampling policy's log-probs when a round is reused,
the reference's), and the reference itself (a frozen copy, or — with LoRA — the policy with
its adapter switched off). The maths is :func:`engine.training.logprobs.completion_logps`.
"""

from __future__ import annotations

import torch

from engine.parallel.sharding import in_step_forwards
from engine.rollout.backend import Rollout
from engine.training.logprobs import completion_logps, completion_logps_with_router_loss


class Forwards:
    """Log-prob forwards over a run's models (``parts``: its :class:`~engine.training.setup.RunParts`)."""

    def __init__(self, cfg, dist, parts) -> None:
        self.cfg, self.dist, self.parts = cfg, dist, parts
        # rows of a group share their prompt (computed once) — not so for ranked groups of mixed sizes
        self.share_group = 1 if parts.ranked else cfg.num_generations

    def logps(self, model, rollout: Rollout, sl: slice = slice(None), with_entropy: bool = False,
              entropy_grad: bool = False):
        """Per-token log-probs (and entropies) of the completion tokens under ``model``, at T.

        Sharded (outside gathered weights), one forward per micro-batch and no shared prompt,
        whose length buckets differ between ranks: FSDP's per-layer gathers need the same calls
        on every rank."""
        group = 1 if in_step_forwards(model) else self.share_group
        with torch.autocast(self.parts.device.type, dtype=torch.bfloat16, enabled=self.parts.use_bf16):
            return completion_logps(model, rollout, sl, group, self.cfg.temperature, with_entropy, entropy_grad)

    def training(self, rollout: Rollout, sl: slice, entropy_grad: bool = False, router_loss: bool = False):
        """Log-probs and entropies of rows ``sl`` through the (possibly distributed) training
        model, and the router's load-balancing loss of a mixture-of-experts model when
        ``router_loss`` (else None); the entropies carry their gradient when ``entropy_grad``."""
        model = self.parts.train_model
        if router_loss:
            with torch.autocast(self.parts.device.type, dtype=torch.bfloat16, enabled=self.parts.use_bf16):
                return completion_logps_with_router_loss(model, rollout, sl, self.cfg.temperature, entropy_grad)
        return (*self.logps(model, rollout, sl, with_entropy=True, entropy_grad=entropy_grad), None)

    def chunked(self, model, rollout: Rollout) -> torch.Tensor:
        """Log-probs of a whole round without gradients, one micro-batch at a time (bounded memory)."""
        n, micro = rollout.completion_ids.size(0), self.cfg.per_device_train_batch_size
        chunks = range(0, n, micro)
        # FSDP gathers layer by layer: a rank with fewer chunks makes as many passes as the others
        idle = self.dist.max_int(len(chunks)) - len(chunks) if in_step_forwards(model) else 0
        logps = torch.cat([self.logps(model, rollout, slice(s, min(s + micro, n)))[0] for s in chunks])
        for _ in range(idle):
            self.logps(model, rollout, slice(0, min(micro, n)))
        return logps

    def policy(self, rollout: Rollout) -> torch.Tensor:
        """:meth:`chunked` through the policy as it is now."""
        return self.chunked(self.parts.model, rollout)

    def reference(self, rollout: Rollout) -> torch.Tensor | None:
        """Reference log-probs: a frozen copy, or — with LoRA — the policy with its adapter switched off."""
        ref_model = self.parts.ref_model
        if isinstance(ref_model, torch.nn.Module):
            return self.chunked(ref_model, rollout)
        if self.cfg.peft is not None:
            with self.parts.model.disable_adapter():
                return self.chunked(self.parts.model, rollout)
        return None
