"""One optimizer step on a step's rows of the round: gradient accumulation over micro-batches,
clipping, a step that every process takes or none does, the schedule, and what follows
(reference sync, weights to a separate sampling engine)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.algo import grpo
from engine.parallel.sharding import full_tensor, full_weights
from engine.training.batch import Batch
from engine.training.metrics import mean_over_micro_batches
from engine.training.progress import NoProgress
from engine.training.micro_batch import LossSetup, loss_with_signal, micro_batch_loss
from engine.training.regularization import EntropyControl, router_aux_coef


@dataclass
class UpdateResult:
    """What an optimizer step reports."""

    loss: float  # the summed micro-batch losses (as backpropagated)
    grad_norm: float  # before clipping
    learning_rate: float  # the rate the step used
    stats: dict[str, float]  # clip ratios, KL, entropy, …: the means of the micro-batches' values, as TRL


class Updater:
    """Takes the optimizer steps of a run (``parts``: its :class:`~engine.training.setup.RunParts`)."""

    def __init__(self, cfg, dist, parts, forwards, faults, publisher, progress=None) -> None:
        self.cfg, self.dist, self.parts, self.faults, self.publisher = cfg, dist, parts, faults, publisher
        self.progress = progress or NoProgress()
        self.loss_setup = LossSetup(cfg, forwards.training, parts.separate_engine, dist.world,
                                    router_aux_coef(cfg, parts.model), EntropyControl(cfg))

    def step(self, batch: Batch, part: slice, state) -> UpdateResult:
        """One optimizer step on rows ``part`` of the round; counts ``state``'s tokens and skipped updates."""
        cfg, dist, parts = self.cfg, self.dist, self.parts
        model, optimizer = parts.model, parts.optimizer
        model.train()
        micro = cfg.per_device_train_batch_size
        starts = range(part.start, part.stop, micro)
        # FSDP gathers layer by layer, so every rank makes as many passes: a rank with fewer
        # micro-batches (ranked groups of mixed sizes) adds passes that change nothing
        idle = dist.max_int(len(starts)) - len(starts) if parts.sharded else 0
        # DAPO divides by the round's tokens (every rank's) per rank and per optimizer step, as TRL
        num_items = grpo.dapo_num_items(float(dist.sum(batch.mask.sum())), dist.world, part.stop - part.start,
                                        batch.mask.size(0))
        per_micro_batch: list[dict] = []
        self.loss_setup.entropy.resume(state)
        total_loss, backward_ran = 0.0, False
        self.progress.start("update", total=len(starts), unit="micro-batches",
                            detail=f"{part.stop - part.start} completions, {micro} per micro-batch")
        for n, start in enumerate(starts):
            self.progress.advance(n, f"micro-batch {n + 1} of {len(starts)}")
            sl = slice(start, min(start + micro, part.stop))
            with dist.no_sync(parts.train_model, last_micro_batch=n == len(starts) - 1):
                loss, stats, logps, entropy = loss_with_signal(self.loss_setup, batch, sl, num_items, len(starts))
                if loss is not None:
                    loss.backward()
                    total_loss += float(loss.detach())
                    backward_ran = True
            per_micro_batch.append(stats)
            batch.token_logps[sl] = logps.detach()
            batch.token_entropy[sl] = entropy.detach()
        for _ in range(idle):
            self._idle_pass(batch, slice(part.start, min(part.start + micro, part.stop)), num_items)
        step_stats = self.loss_setup.entropy.end_step(dist, state)  # the entropy bonus's coefficient, once a step
        if not backward_ran:  # every group was left out: the zero gradients computing them would have
            for p in model.parameters():  # given (so Adam's moments and weight decay move on as usual)
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)

        grad_norm = full_tensor(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))

        lr = optimizer.param_groups[0]["lr"]
        finite = math.isfinite(total_loss) and bool(torch.isfinite(grad_norm))
        if dist.max_int(int(not finite)) == 0:  # every rank steps, or none does
            optimizer.step()
            self.faults.update_done()
        else:
            state.skipped_updates += 1
            self.faults.update_skipped(state.step, state.skipped_updates)
        optimizer.zero_grad(set_to_none=True)
        parts.scheduler.step()
        if cfg.sync_ref_model and isinstance(parts.ref_model, torch.nn.Module) and state.step % cfg.ref_model_sync_steps == 0:
            with full_weights(model):
                grpo.mix_into_reference(parts.ref_model, model, cfg.ref_model_mixup_alpha)
            self.publisher.log("info", "ref_sync", f"reference model moved towards the policy "
                               f"(alpha {cfg.ref_model_mixup_alpha})", step=state.step)
        parts.backend.sync_weights(model)  # a separate engine gathers sharded weights to receive them
        rollout = batch.rollout
        state.num_tokens += int(rollout.prompt_mask[part].sum() + rollout.model_lengths[part].sum())
        return UpdateResult(loss=total_loss, grad_norm=float(grad_norm), learning_rate=lr,
                            stats={**mean_over_micro_batches(per_micro_batch), **step_stats})

    def _idle_pass(self, batch: Batch, sl: slice, num_items: float) -> None:
        """A forward and backward of rows ``sl`` that adds nothing to the gradients: it keeps
        this rank's FSDP collectives in step with a rank that has more micro-batches."""
        loss, *_ = micro_batch_loss(self.loss_setup, batch, sl, num_items, record=False)
        (loss * 0.0).backward()
