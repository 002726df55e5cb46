"""The training loop and its collaborators: the round, the micro-batch loss, log-probs, model loading, checkpointing, evaluation, faults and health, steering."""
