"""Agentic GRPO: tools, environments and multi-turn rollouts (TRL 1.16's ``tools``,
``environment_factory``, ``rollout_func`` and ``max_tool_calling_iterations``).

- :mod:`engine.agents.tools`: the tools a model may call, their schemas, and running calls
  (sync or async, with a timeout; a tool that raises or hangs gives an error result).
- :mod:`engine.agents.environments`: environment factories, one instance per rollout.
- :mod:`engine.agents.parsing`: tool calls read back from what the model wrote.
- :mod:`engine.agents.templates`: the chat template's rendering of prompts with tools and of tool results.
- :mod:`engine.agents.episodes`: the multi-turn loop: generate, call tools, append results, go on.
- :mod:`engine.agents.custom_rollout`: a user's ``rollout_func`` and what it must return.
- :mod:`engine.agents.calculator`: the bundled example environment.
"""
