"""Prompt sources (local files, hub datasets), chat rendering, batch order, ranked groups, built-in tasks."""
