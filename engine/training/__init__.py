"""The training loop (trainer) and its collaborators: setup, round geometry, the round
(generate, score, advantages), the update and the micro-batch loss, log-prob forwards,
step reports and health, evaluation, checkpointing (TrainState, data-only checkpoint
files), steering, faults, model loading."""
