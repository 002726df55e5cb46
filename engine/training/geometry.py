"""How generation rounds map onto optimizer steps.

One round of completions feeds ``steps_per_round`` optimizer steps, each on its own slice of
the round, and the whole round is gone through ``num_iterations`` (μ) times before the next
one is generated. With per-step batches of 16 rows, rounds of 32 and μ = 2 a round covers
four steps, which use the rows ``0:16, 16:32, 0:16, 16:32``; step 5 starts the next round.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.schema import ConfigError


@dataclass(frozen=True)
class RoundGeometry:
    """The sizes of a run's rounds and steps, on one process (none of them is adjustable)."""

    round_size: int  # completions a round generates on this process
    per_step: int  # rows an optimizer step uses: per_device_train_batch_size × gradient_accumulation_steps
    num_iterations: int  # μ: passes over a round
    num_generations: int  # G: completions per prompt
    ranked: bool  # ranked groups: a round is one step of whole groups of any size

    @classmethod
    def of(cls, cfg, world: int) -> RoundGeometry:
        """The geometry ``cfg`` asks for with ``world`` processes; a round that does not split
        into whole steps and groups is a config error."""
        ranked = cfg.dataset.format == "ranked"
        per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
        if ranked:
            round_size = per_step
        elif cfg.generation_batch_size:  # counts every process's completions, as in TRL
            round_size = cfg.generation_batch_size // world
        else:
            round_size = cfg.per_device_train_batch_size * (cfg.steps_per_generation or cfg.gradient_accumulation_steps)
        if round_size % per_step or round_size % cfg.num_generations:
            raise ConfigError(f"generation_batch_size: {round_size} completions per round on each of "
                              f"{world} processes is not a multiple of {per_step} per step")
        return cls(round_size, per_step, cfg.num_iterations, cfg.num_generations, ranked)

    @property
    def steps_per_round(self) -> int:
        return self.round_size // self.per_step

    @property
    def prompts_per_round(self) -> int:
        return self.round_size // self.num_generations

    @property
    def reuses_rounds(self) -> bool:
        """The sampling policy differs from the one being updated once a round feeds several steps."""
        return self.num_iterations > 1 or self.round_size > self.per_step

    def _index(self, step: int) -> int:
        """Where 1-based ``step`` falls among the steps of its round's passes (0: the first)."""
        return (step - 1) % (self.steps_per_round * self.num_iterations)

    def starts_round(self, step: int) -> bool:
        return self._index(step) == 0

    def rows(self, step: int, round_rows: int) -> slice:
        """The rows of the round (of ``round_rows``) that ``step`` trains on."""
        if self.ranked:  # the groups' own sizes decide how many rows a step has
            return slice(0, round_rows)
        k = self._index(step) % self.steps_per_round
        return slice(k * self.per_step, (k + 1) * self.per_step)
