"""The tools a model may call during a rollout, and running the calls it makes.

A tool is a plain Python function (or an environment's method), sync or ``async``, with type
hints and a Google-style docstring: its JSON schema — what the chat template shows the model —
comes from them through ``transformers.utils.get_json_schema``, as TRL's does.

Calls never break a run. A tool that raises gives the model ``{'error': '...'}`` as its
result (TRL's convention); one still running after ``tool_timeout`` seconds gives a
"timed out" error the same way. An ``async`` tool that times out is cancelled; a sync one
cannot be (Python cannot stop a thread), so its thread is left to finish on its own and
the episode goes on without it. Async calls of one round run concurrently.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class AgentError(ValueError):
    """A user's tools, environment, template or rollout_func that the run cannot use: one
    message that names the cause, no traceback."""


class ToolSpecError(AgentError):
    """A tool whose schema cannot be built (missing type hints or docstring arguments)."""


@dataclass(frozen=True)
class Tool:
    """One callable tool: its name (the function's ``__name__``, which the model calls it by)."""

    name: str
    fn: Callable
    is_async: bool

    @classmethod
    def of(cls, fn: Callable) -> "Tool":
        name = getattr(fn, "__name__", None)
        if not name or not callable(fn):
            raise ToolSpecError(f"tools: {fn!r} is not a function")
        return cls(name=name, fn=fn, is_async=inspect.iscoroutinefunction(fn))

    def schema(self) -> dict:
        """The JSON schema the chat template renders (``{"type": "function", "function": {...}}``)."""
        from transformers.utils import get_json_schema

        try:
            return get_json_schema(self.fn)
        except Exception as exc:  # transformers' TypeHintParsingException / DocstringParsingException
            raise ToolSpecError(
                f"tool {self.name!r}: its schema cannot be built ({exc}); a tool needs a type hint on every "
                "argument and a Google-style docstring with an Args: entry for each") from exc


@dataclass(frozen=True)
class ToolCall:
    """A call the model wrote: the tool's name and its arguments."""

    name: str
    arguments: dict


@dataclass
class ToolResult:
    """What a call gave: ``content`` is what the model is shown; ``error`` a one-line message
    (None when the tool returned)."""

    name: str
    content: Any
    error: str | None = None
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else str(self.content)


def _failed(name: str, message: str, timed_out: bool = False) -> ToolResult:
    return ToolResult(name=name, content=str({"error": message}), error=message, timed_out=timed_out)


def _returned(name: str, value: Any) -> ToolResult:
    # A list of content blocks goes to the template as it is (multimodal tool results, as TRL); the rest as text.
    return ToolResult(name=name, content=value if isinstance(value, list) else str(value))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ToolRunner:
    """Runs a round's tool calls with a timeout each (``timeout`` seconds)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="grpo-tools-async", daemon=True).start()
            self._loop = loop
        return self._loop

    def close(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    def run(self, rows: list[tuple[list[ToolCall], dict[str, Tool]]]) -> list[list[ToolResult]]:
        """Each row's calls, in order, against that row's tools; one result per call."""
        results: list[list[ToolResult | None]] = [[None] * len(calls) for calls, _ in rows]
        waiting: list[tuple[int, int, str, concurrent.futures.Future]] = []
        for r, (calls, tools) in enumerate(rows):
            for c, call in enumerate(calls):
                tool = tools.get(call.name)
                if tool is None:
                    results[r][c] = _failed(call.name, f"Tool {call.name} not found.")
                elif tool.is_async:
                    try:
                        coro = tool.fn(**call.arguments)
                    except Exception as exc:  # noqa: BLE001 - wrong arguments fail before the coroutine exists
                        results[r][c] = _failed(call.name, _one_line(exc))
                        continue
                    future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, self.timeout), self._event_loop())
                    waiting.append((r, c, call.name, future))
        # sync calls one after another (as TRL), each on a thread so a hang costs the timeout, not the run
        for r, (calls, tools) in enumerate(rows):
            for c, call in enumerate(calls):
                tool = tools.get(call.name)
                if tool is not None and not tool.is_async:
                    results[r][c] = self._call_sync(tool, call)
        for r, c, name, future in waiting:
            try:
                results[r][c] = _returned(name, future.result(timeout=self.timeout + 5))
            except (asyncio.TimeoutError, concurrent.futures.TimeoutError, TimeoutError):
                future.cancel()
                results[r][c] = _failed(name, f"timed out after {self.timeout:g} s", timed_out=True)
            except Exception as exc:  # noqa: BLE001 - the tool's own error goes back to the model
                results[r][c] = _failed(name, _one_line(exc))
        return results  # every slot is filled above

    def _call_sync(self, tool: Tool, call: ToolCall) -> ToolResult:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = tool.fn(**call.arguments)
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a tool must not end the run
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"grpo-tool-{tool.name}", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            return _failed(call.name, f"timed out after {self.timeout:g} s", timed_out=True)
        if "error" in box:
            return _failed(call.name, _one_line(box["error"]))
        return _returned(call.name, box.get("value"))
