"""A stand-in generation backend for tool runs: it writes scripted turns, so tests know
exactly which tool calls an episode makes and which tokens are the model's.

``ScriptedBackend(script)`` answers each row from its decoded context: after a tool result it
copies the result (``<tool_response>46</tool_response>`` → ``46``); otherwise it writes
``script(context, row)``, e.g. a ``<tool_call>`` block. The tokenizer is the tiny model's
(one token per character) with :data:`TOOL_TEMPLATE`, a chat template that shows tools.
"""

from __future__ import annotations

import re

from engine.rollout.backend import rollout_from_lists

TOOL_TEMPLATE = (
    "{{ bos_token }}{% if tools %}tools: {{ tools | map(attribute='function.name') | join(',') }}\n{% endif %}"
    "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}"
    "{% elif m.role == 'assistant' %}{{ m.content }}{% for c in m.tool_calls or [] %}<tool_call>"
    "{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}</tool_call>{% endfor %}"
    "{{ eos_token }}{% elif m.role == 'tool' %}<tool_response>{{ m.content }}</tool_response>{% endif %}{% endfor %}"
)


def tool_tokenizer(path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = TOOL_TEMPLATE
    return tok


def call(name: str, **arguments) -> str:
    import json

    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, separators=(",", ":")) + "</tool_call>"


def operands(context: str) -> tuple[int, int]:
    a, b = re.findall(r"(\d+)\+(\d+)=", context)[-1]
    return int(a), int(b)


class ScriptedBackend:
    """Backend protocol (engine.rollout.backend) with scripted turns; ``calls`` counts generate()."""

    def __init__(self, tokenizer, script, pad_id: int, eos_id: int) -> None:
        self.tokenizer, self.script, self.pad_id, self.eos_id = tokenizer, script, pad_id, eos_id
        self.calls = 0

    @classmethod
    def factory(cls, tokenizer, script):
        return lambda model, pad_id, eos_ids: cls(tokenizer, script, pad_id, eos_ids[0])

    def sync_weights(self, model) -> None:
        pass

    def generate(self, prompt_ids, num_generations, params, generator=None, **options):
        self.calls += 1
        prompts, completions = [], []
        for p, ids in enumerate(prompt_ids):
            context = self.tokenizer.decode(ids, skip_special_tokens=False)
            for k in range(num_generations):
                results = re.findall(r"<tool_response>(.*?)</tool_response>", context)
                if context.endswith("</tool_response>"):
                    text = results[-1] if results[-1].strip().lstrip("-").isdigit() else "?"
                else:
                    text = self.script(context, p * num_generations + k)
                tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_id]
                completions.append(tokens[: params.max_new_tokens])
                prompts.append(list(ids))
        truncated = [c[-1] != self.eos_id for c in completions]
        return rollout_from_lists(prompts, completions, truncated, self.pad_id,
                                  logprobs=[[-0.5] * len(c) for c in completions])
