"""Tool calls read back from an assistant turn, the way the model's template writes them.

A tokenizer that carries a ``response_template`` (or the older ``response_schema``) is parsed
by transformers' own ``parse_response``, as TRL does. Others fall back to the format most chat
models with tools use (Qwen2.5/3, Hermes, and the bundled agent model):
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.

A turn that opens a tool call but does not close it, or whose call is not valid JSON with a
``name`` and ``arguments``, is a *parse error*: counted and shown, and the episode ends there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from engine.agents.tools import ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)


@dataclass
class ParsedTurn:
    """An assistant turn: its text without the call markup, its calls, and why it could not be read."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None

    def message(self) -> dict:
        """The turn as a chat message, in the shape transformers' templates and TRL use."""
        msg: dict = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in self.tool_calls]
        return msg


def parse_hermes(text: str) -> ParsedTurn:
    """Tool calls in ``<tool_call>{json}</tool_call>`` blocks.

    >>> t = parse_hermes('sure <tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>')
    >>> t.content, t.tool_calls[0].name, t.tool_calls[0].arguments
    ('sure', 'add', {'a': 1, 'b': 2})
    >>> parse_hermes('<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>').error
    "tool call 1 is not valid JSON: Expecting ',' delimiter at char 36"
    >>> parse_hermes('<tool_call>{"name": "add"').error
    'a <tool_call> is not closed'
    """
    calls: list[ToolCall] = []
    for i, m in enumerate(_BLOCK.finditer(text), start=1):
        body = m.group(1).strip()
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            return ParsedTurn(_outside(text), calls, f"tool call {i} is not valid JSON: {exc.msg} at char {exc.pos}")
        problem = _call_problem(data)
        if problem:
            return ParsedTurn(_outside(text), calls, f"tool call {i} {problem}")
        arguments = data["arguments"]
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        calls.append(ToolCall(name=data["name"], arguments=arguments))
    rest = _BLOCK.sub("", text)
    if OPEN in rest:
        return ParsedTurn(_outside(text), calls, f"a {OPEN} is not closed")
    return ParsedTurn(_outside(text), calls)


def _call_problem(data) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return 'has no "name"'
    arguments = data.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return '"arguments" is not a JSON object'
    if not isinstance(arguments, dict):
        return '"arguments" is not an object'
    data.setdefault("arguments", {})
    return None


def _outside(text: str) -> str:
    """The turn's text with the call blocks (and an unclosed one) taken out."""
    text = _BLOCK.sub("", text)
    if OPEN in text:
        text = text[: text.index(OPEN)]
    return text.strip()


def _strip_specials(text: str, tokenizer) -> str:
    for token in (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token):
        if token:
            text = text.replace(token, "")
    return text


def uses_response_template(tokenizer) -> bool:
    """Whether transformers can parse this tokenizer's responses itself."""
    return callable(getattr(tokenizer, "parse_response", None)) and (
        getattr(tokenizer, "response_template", None) is not None
        or getattr(tokenizer, "response_schema", None) is not None)


def parse_turn(tokenizer, ids: list[int], prefix: list[int], tools: list | None = None) -> ParsedTurn:
    """The assistant turn ``ids`` (generated after ``prefix``), read with the tokenizer's response
    template when it has one, else as ``<tool_call>`` JSON blocks."""
    if uses_response_template(tokenizer):
        try:
            parsed = tokenizer.parse_response(ids, prefix=prefix, tools=tools or None)
        except Exception as exc:  # noqa: BLE001 - a malformed turn is the model's, not the run's, problem
            return ParsedTurn(_strip_specials(tokenizer.decode(ids, skip_special_tokens=True), tokenizer).strip(),
                              error=f"the response template cannot read this turn: {' '.join(str(exc).split())}")
        calls = []
        for call in parsed.get("tool_calls") or []:
            function = call.get("function", call) if isinstance(call, dict) else {}
            arguments = function.get("arguments", {})
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except json.JSONDecodeError:
                    return ParsedTurn(str(parsed.get("content") or ""), calls, '"arguments" is not valid JSON')
            if not isinstance(function.get("name"), str) or not isinstance(arguments, dict):
                return ParsedTurn(str(parsed.get("content") or ""), calls, "a tool call has no name or arguments")
            calls.append(ToolCall(name=function["name"], arguments=arguments))
        return ParsedTurn(str(parsed.get("content") or "").strip(), calls)
    text = _strip_specials(tokenizer.decode(ids, skip_special_tokens=False), tokenizer)
    return parse_hermes(text)
