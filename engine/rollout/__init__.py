"""Generation backends: the protocol and the Rollout record, transformers, the fast Llama-family forward, vLLM."""
