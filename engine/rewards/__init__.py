"""Reward functions: built-ins, user plugins, reward models, and scoring a batch with them."""
