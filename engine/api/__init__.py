"""The Python API for notebooks and TRL scripts, shaped like TRL's::

    from engine.api import GRPOConfig, GRPOTrainer

    args = GRPOConfig(output_dir="runs/nb", num_generations=8, max_steps=50, learning_rate=5e-5)
    trainer = GRPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", reward_funcs=[my_reward, "format"],
                          args=args, train_dataset=dataset)
    trainer.train()

``GRPOConfig`` (:mod:`engine.api.config`) is a dataclass with every field of TRL's, so
``HfArgumentParser`` / ``TrlParser`` parse it; ``GRPOTrainer`` (:mod:`engine.api.trainer`)
drives the same engine as the dashboard and writes the same run directory, so
``grpo-tui view RUN_DIR`` / ``grpo-tui attach RUN_DIR`` watch a notebook run.
"""

from engine.api.config import GRPOConfig, GRPOConfigError
from engine.api.output_dir import HubError
from engine.api.trainer import GRPOTrainer, TrainingFailed

__all__ = ["GRPOConfig", "GRPOConfigError", "GRPOTrainer", "HubError", "TrainingFailed"]
