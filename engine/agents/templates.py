"""What the chat template makes of a tool run: the prompt with the tools' schemas, and the
tokens of tool results appended to an episode.

Episodes are built by concatenating token ids — prompt, the model's turn, the tool results'
tokens, the model's next turn — never by re-rendering the conversation, so the model trains on
exactly the tokens it saw. The tool results' tokens are the template's rendering of the tool
messages after an assistant turn, found as TRL finds them: render a dummy conversation up to an
assistant turn with a tool call, then with the tool messages and a generation prompt, and keep
what the second adds after the first's last end-of-sequence token.
"""

from __future__ import annotations

from engine.agents.tools import AgentError

DUMMY_USER = {"role": "user", "content": "dummy"}


class ToolTemplateError(AgentError):
    """The model's chat template cannot render a tool conversation."""


def _render(tokenizer, messages: list[dict], tools: list[dict] | None, generation_prompt: bool, kwargs: dict) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                         add_generation_prompt=generation_prompt, **kwargs)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def with_observation(messages: list[dict], observation) -> list[dict]:
    """The prompt's messages with an environment's ``reset()`` text appended to the last one
    (TRL's rule; the row's own messages are left untouched)."""
    if observation is None:
        return messages
    last = messages[-1]
    content = last.get("content", "")
    if isinstance(observation, list) and isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if isinstance(observation, str) and isinstance(content, list):
        observation = [{"type": "text", "text": observation}]
    return messages[:-1] + [{**last, "content": content + observation}]


def prompt_ids(tokenizer, messages: list[dict], tools: list[dict], kwargs: dict | None = None) -> list[int]:
    """The prompt's token ids with the tools' schemas rendered by the template, ready to generate."""
    return _render(tokenizer, messages, tools, True, dict(kwargs or {}))


def tool_suffix_ids(tokenizer, tool_messages: list[dict], kwargs: dict | None = None) -> list[int]:
    """The tokens the template puts after an assistant turn for ``tool_messages`` (the results
    of its calls), the next assistant turn's generation prompt included."""
    kwargs = dict(kwargs or {})
    call = [{"type": "function", "function": {"name": tool_messages[0].get("name", "tool"), "arguments": {}}}]
    dummy = [DUMMY_USER, {"role": "assistant", "content": "", "tool_calls": call}]
    prefix = _render(tokenizer, dummy, None, False, kwargs)
    full = _render(tokenizer, dummy + tool_messages, None, True, kwargs)
    eos = tokenizer.eos_token_id
    ends = [i for i, t in enumerate(prefix) if t == eos]
    if ends:  # templates that write "<eos>\n" after a turn: the model stopped at the EOS
        prefix = prefix[: ends[-1] + 1]
    if full[: len(prefix)] != prefix:
        raise ToolTemplateError("the chat template renders an assistant turn differently once tool results "
                                "follow it, so tool results cannot be appended to an episode")
    return full[len(prefix):]


def check_tool_template(tokenizer) -> str | None:
    """Why the tokenizer's chat template cannot run tool episodes, or None when it can: it must
    render a user → assistant(tool call) → tool conversation and append tool results after an
    assistant turn without changing the turn."""
    if not getattr(tokenizer, "chat_template", None):
        return "the tokenizer has no chat template, so it cannot show tools to the model"
    probe = [{"role": "tool", "name": "probe", "content": "42"}]
    try:
        suffix = tool_suffix_ids(tokenizer, probe)
    except ToolTemplateError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a template that raises on tool messages (jinja errors)
        return f"the chat template cannot render tool messages ({type(exc).__name__}: {' '.join(str(exc).split())})"
    if "42" not in tokenizer.decode(suffix):
        return "the chat template does not show tool results to the model (a tool message renders to nothing)"
    return None
