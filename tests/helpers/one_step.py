"""One optimizer step of the tiny preset, alone or as one rank of ``accelerate launch``.

    python tests/helpers/one_step.py OUT PER_DEVICE_BATCH [--separate-engine] [KEY=VALUE ...]

Each prompt's completions are sampled with a generator seeded by the prompt itself, so one
process and several processes sample the same completions for the same global batch. Rank 0
saves the gradients the optimizer step used to ``OUT/grads.pt`` (whole, when FSDP shards them);
the run goes to ``OUT/run``.
"""

from __future__ import annotations

import os
import sys
import warnings
import zlib
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message="Seems like `optimizer.step()` has been overridden")

from engine.config.presets import load_preset  # noqa: E402
from engine.run.control import Control  # noqa: E402
from engine.run.events import RunStarted  # noqa: E402
from engine.rollout.backend import TransformersRollout, concat_rollouts  # noqa: E402
from engine.parallel.sharding import full_tensor, full_weights  # noqa: E402
from engine.training.trainer import Trainer  # noqa: E402


class PerPromptSeeded:
    """The transformers backend, one prompt at a time, each with a generator seeded by its ids."""

    def __init__(self, model, pad_id, eos_ids):
        self.inner = TransformersRollout(model, pad_id, eos_ids)
        self.pad_id = pad_id

    def generate(self, prompt_ids, num_generations, params, generator=None):
        parts = []
        for ids in prompt_ids:
            seed = zlib.crc32(bytes(str(ids), "utf-8"))
            gen = torch.Generator(device="cpu").manual_seed(seed)
            parts.append(self.inner.generate([ids], num_generations, params, gen))
        return concat_rollouts(parts, self.pad_id)

    def sync_weights(self, model):
        self.inner.sync_weights(model)


class SeparateCopy(PerPromptSeeded):
    """Samples from a copy of the weights of its own, as vLLM does: the trainer gathers and
    sends the whole weights after every update, and corrects for the sampler's log-probs."""

    separate_engine = True

    def __init__(self, model, pad_id, eos_ids):
        from transformers import AutoModelForCausalLM

        super().__init__(AutoModelForCausalLM.from_pretrained(model.config._name_or_path), pad_id, eos_ids)

    def sync_weights(self, model):
        own = dict(self.inner.model.named_parameters())
        with torch.no_grad(), full_weights(model):  # as the vLLM backends do: sharded weights gathered whole
            for name, param in model.named_parameters():
                own[name].copy_(param)


def main() -> None:
    out, batch, extra = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    backend = PerPromptSeeded
    if extra[:1] == ["--separate-engine"]:
        backend, extra = SeparateCopy, extra[1:]
    cfg = load_preset("tiny-arithmetic", [
        f"output_dir={out / 'run'}", f"per_device_train_batch_size={batch}", "max_steps=1", "num_generations=4",
        "eval_steps=0", "save_steps=0", "log_completions_groups=1", *extra,
    ])
    trainer = Trainer(cfg, Control(), evaluate=False, rollout_backend=backend)
    grads: dict[str, torch.Tensor] = {}

    def capture_grads(event) -> None:
        if not isinstance(event, RunStarted):
            return
        optimizer_step = trainer.optimizer.step

        def step(*args, **kwargs):
            grads.update({n: full_tensor(p.grad.detach()).clone()  # whole gradients under FSDP (every rank gathers)
                          for n, p in trainer.model.named_parameters() if p.grad is not None})
            return optimizer_step(*args, **kwargs)

        trainer.optimizer.step = step

    trainer.control.subscribe(capture_grads)
    summary = trainer.run()
    if "error" in summary:
        raise SystemExit(f"run failed: {summary['error']}")
    if trainer.dist.is_main:
        torch.save(grads, out / "grads.pt")
    if torch.distributed.is_initialized():  # leave together, as grpo-tui's headless runs do
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
