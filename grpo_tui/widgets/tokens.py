"""Colour a completion token by token: by log-prob, by entropy, or by advantage.

Colours blend between theme colours (error → success for probability, surface →
warning for entropy), so the view follows the active theme. Pure functions: tokens
and numbers in, Content out.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from textual.color import Color
from textual.content import Content

MODES = ("logprob", "entropy", "advantage")
ENTROPY_FULL = 2.0  # nats at which entropy gets the full warning colour
ADVANTAGE_FULL = 2.0


def display_token(token: str) -> str:
    if token.startswith("<") and token.endswith(">") and len(token) > 2:
        return "⟨" + token[1:-1] + "⟩"
    return token.replace("\n", "⏎\n").replace("\t", "⇥")


def _style(background: Color) -> str:
    return f"{background.get_contrast_text(0.95).hex} on {background.hex}"


def token_colour(mode: str, logprob: float | None, entropy: float | None, advantage: float | None,
                 theme: Mapping[str, str]) -> Color:
    surface = Color.parse(theme.get("surface", "#1e1e1e"))
    good = Color.parse(theme.get("success", "green"))
    bad = Color.parse(theme.get("error", "red"))
    warn = Color.parse(theme.get("warning", "yellow"))
    if mode == "logprob":
        if logprob is None or not math.isfinite(logprob):
            return surface
        return bad.blend(good, min(1.0, max(0.0, math.exp(logprob))))
    if mode == "entropy":
        if entropy is None or not math.isfinite(entropy):
            return surface
        return surface.blend(warn, min(1.0, max(0.0, entropy / ENTROPY_FULL)))
    if advantage is None or not math.isfinite(advantage):
        return surface
    target = good if advantage >= 0 else bad
    return surface.blend(target, min(1.0, abs(advantage) / ADVANTAGE_FULL))


def colour_tokens(completion: dict, mode: str, theme: Mapping[str, str]) -> Content:
    """The completion's tokens, each on a background that encodes the chosen quantity."""
    tokens: Sequence[str] = completion.get("tokens") or []
    if not tokens:
        return Content(str(completion.get("text", "")))
    logprobs = completion.get("logprobs") or []
    entropies = completion.get("entropy") or []
    advantage = completion.get("advantage")
    parts = []
    for i, token in enumerate(tokens):
        lp = logprobs[i] if i < len(logprobs) else None
        h = entropies[i] if i < len(entropies) else None
        colour = token_colour(mode, lp, h, advantage, theme)
        parts.append((display_token(token), _style(colour)))
    return Content.assemble(*parts)


def legend(mode: str, theme: Mapping[str, str]) -> Content:
    """A small scale showing what the colours mean."""
    if mode == "logprob":
        stops = [(f" {p:g} ", token_colour(mode, math.log(max(p, 1e-9)), None, None, theme)) for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
        head = "probability: "
    elif mode == "entropy":
        stops = [(f" {h:g} ", token_colour(mode, None, h, None, theme)) for h in (0.0, 0.5, 1.0, 1.5, 2.0)]
        head = "entropy (nats): "
    else:
        stops = [(f" {a:+d} ", token_colour(mode, None, None, a, theme)) for a in (-2, -1, 0, 1, 2)]
        head = "advantage: "
    return Content.assemble(head, *[(label, _style(colour)) for label, colour in stops])
