"""The group inspector: any past step's groups, one completion token by token.

Reads samples.jsonl through a :class:`SampleIndex`, so it works the same for a live run
(new steps appear as they are written) and for a finished run opened read-only. ``/``
searches the completions of every step (text, /regex/, reward/advantage/length ranges: see
:mod:`grpo_tui.model.sample_search`) in a worker thread, so a file of hundreds of MB never
blocks the keys; the first hit is shown as soon as it is found, ``n``/``N`` step through them.
An episode of a run with tools is shown turn by turn (:mod:`grpo_tui.widgets.episode_view`).
"""

from __future__ import annotations

import math
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from grpo_tui.commands import ScreenBindingCommands
from grpo_tui.widgets.footer import ResponsiveFooter
from grpo_tui.model.sample_index import SampleIndex
from grpo_tui.screens.inspector_search import SampleSearch
from grpo_tui.widgets.episode import environment_rewards, final_answer, is_episode, tool_tokens
from grpo_tui.widgets.episode_view import EpisodeView, episode_blocks
from grpo_tui.widgets.samples import completion_reward, fmt_num, short, sign_style, text_parts
from grpo_tui.widgets.tokens import MODES, colour_tokens, display_token, legend

SORTS = ("sampled", "best", "worst")


def group_stats(group: dict) -> tuple[float, float]:
    rewards = [r for r in map(completion_reward, group.get("completions") or []) if r is not None]
    if not rewards:
        return math.nan, math.nan
    mean = sum(rewards) / len(rewards)
    std = group.get("reward_std")
    if not isinstance(std, (int, float)):
        std = (sum((r - mean) ** 2 for r in rewards) / len(rewards)) ** 0.5
    return mean, float(std)


def is_zero_std(group: dict) -> bool:
    _, std = group_stats(group)
    return not (std > 1e-8)


class GoToStep(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="goto.cancel")]

    def __init__(self, steps: list[int]) -> None:
        super().__init__()
        self.steps = steps

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Go to step ({self.steps[0]}–{self.steps[-1]})", classes="dialog-title")
            yield Input(placeholder="step", id="goto-step", type="integer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            wanted = int(event.value)
        except ValueError:
            self.dismiss(None)
            return
        self.dismiss(min(self.steps, key=lambda s: abs(s - wanted)))

    def action_cancel(self) -> None:
        self.dismiss(None)


class InspectorScreen(SampleSearch, Screen):
    DEFAULT_CSS = """
    #insp-search-status { height: 1; background: $panel; display: none; }
    #insp-search { display: none; }
    #insp-match { display: none; margin-bottom: 1; }
    """
    COMMANDS = {ScreenBindingCommands}
    BINDINGS = [
        Binding("escape", "back", "Back", id="inspector.back",
                tooltip="Back to the dashboard (while searching: stop the search)"),
        # one footer hint for both directions ("[ ] Step"); the palette lists them apart
        Binding("left_square_bracket,comma", "step(-1)", "Previous step", id="inspector.prev", show=False),
        Binding("right_square_bracket,full_stop", "step(1)", "Step", id="inspector.next", key_display="[ ]",
                tooltip="Next step"),
        Binding("g", "goto", "Jump", id="inspector.goto", tooltip="Jump to a step"),
        Binding("t", "colour", "Colour", id="inspector.colour", tooltip="Colour tokens by log-prob, advantage or entropy"),
        Binding("z", "zero_std", "0σ", id="inspector.zero_std", tooltip="Only groups whose rewards all agree (zero std)"),
        Binding("x", "truncated", "Trunc", id="inspector.truncated", tooltip="Only truncated completions"),
        Binding("b", "sort", "Sort", id="inspector.sort", tooltip="Sort completions: as sampled, best or worst by advantage"),
        Binding(
            "e", "reward_bench", "Bench", id="inspector.reward_bench",
            tooltip="Edit in reward bench: score this completion (edited) with every reward function",
        ),
        Binding("slash", "search", "Find", id="inspector.search", key_display="/",
                tooltip="Search samples of every step: text, /regex/, reward>0.5 adv<0 len>100 step>=50"),
        Binding("n", "hit(1)", "Next hit", id="inspector.next_hit", show=False, tooltip="Next search hit"),
        Binding("N", "hit(-1)", "Previous hit", id="inspector.prev_hit", show=False, tooltip="Previous search hit"),
    ]

    def __init__(self, run_dir: str | Path, step: int | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.index = SampleIndex(Path(run_dir) / "samples.jsonl")
        self.index.refresh()
        steps = self.index.steps
        self.step: int | None = step if step in steps else (steps[-1] if steps else None)
        self.record: dict | None = None
        self.mode = MODES[0]
        self.only_zero_std = False
        self.only_truncated = False
        self.sort = SORTS[0]
        self.groups: list[tuple[int, dict]] = []
        self.completions: list[tuple[int, dict]] = []
        self.config = read_config(self.run_dir)
        self._init_search()

    def compose(self) -> ComposeResult:
        yield Static("", id="insp-header")
        with Horizontal(id="insp-body"):
            with Vertical(id="insp-lists"):
                yield OptionList(id="insp-groups")
                yield OptionList(id="insp-completions")
            with VerticalScroll(id="insp-detail"):
                yield Static("", id="insp-match")
                yield Static("", id="insp-text")
                yield EpisodeView(id="insp-episode")
                yield Static("", id="insp-legend")
                yield Static("", id="insp-breakdown")
                yield Static("", id="insp-tokens")
        yield Static("", id="insp-search-status")
        yield Input(placeholder="text, /regex/, reward>0.5 adv<0 len>100 step>=50 — Enter searches every step",
                    id="insp-search")
        yield ResponsiveFooter()

    def on_mount(self) -> None:
        self.query_one("#insp-groups").border_title = "Groups"
        self.query_one("#insp-completions").border_title = "Completions"
        self.query_one("#insp-detail").border_title = "Completion"
        self.load_step()
        self.query_one("#insp-groups").focus()
        self.set_interval(1.0, self._poll)

    def _poll(self) -> None:
        if self.index.refresh():
            if self.step is None:
                self.step = self.index.steps[-1]
                self.load_step()
            else:
                self._header()

    # -- loading and filtering ---------------------------------------------------
    def load_step(self) -> None:
        self.record = self.index.load(self.step) if self.step is not None else None
        self._fill_groups()

    def _fill_groups(self, keep: int | None = None, number: int | None = None) -> None:
        """Fill the groups list, highlighting position ``keep`` or else the group numbered ``number``."""
        groups = list(enumerate((self.record or {}).get("groups") or []))
        if self.only_zero_std:
            groups = [(i, g) for i, g in groups if is_zero_std(g)]
        if self.only_truncated:
            groups = [(i, g) for i, g in groups if any(c.get("truncated") for c in g.get("completions") or [])]
        self.groups = groups
        ol = self.query_one("#insp-groups", OptionList)
        ol.clear_options()
        for i, group in groups:
            mean, std = group_stats(group)
            flag = "  ⚠ zero std" if is_zero_std(group) else ""
            answer = f" → {group['answer']}" if group.get("answer") is not None else ""
            ol.add_option(
                Option(
                    Content.assemble(
                        (f"#{i + 1} ", "bold"),
                        short(str(group.get("prompt", "")), 30),
                        (answer, "$accent"),
                        (f"  μ {fmt_num(mean, '.2f')} σ {fmt_num(std, '.2f')}", "$text-muted"),
                        (flag, "$warning"),
                    )
                )
            )
        if number is not None:
            keep = next((pos for pos, (i, _) in enumerate(groups) if i == number), None)
        if groups:
            ol.highlighted = 0 if keep is None else min(keep, len(groups) - 1)
        self._header()
        self._fill_completions()

    def current_group(self) -> dict | None:
        ol = self.query_one("#insp-groups", OptionList)
        if ol.highlighted is None or ol.highlighted >= len(self.groups):
            return None
        return self.groups[ol.highlighted][1]

    def current_group_number(self) -> int | None:
        ol = self.query_one("#insp-groups", OptionList)
        if ol.highlighted is None or ol.highlighted >= len(self.groups):
            return None
        return self.groups[ol.highlighted][0]

    def _fill_completions(self) -> None:
        group = self.current_group()
        number = self.current_group_number()
        comps = list(enumerate((group or {}).get("completions") or []))
        if self.only_truncated:
            comps = [(i, c) for i, c in comps if c.get("truncated")]
        if self.sort != "sampled":
            def adv(item: tuple[int, dict]) -> float:
                a = item[1].get("advantage")
                return a if isinstance(a, (int, float)) and math.isfinite(a) else 0.0

            comps.sort(key=adv, reverse=self.sort == "best")
        self.completions = comps
        ol = self.query_one("#insp-completions", OptionList)
        ol.clear_options()
        for i, comp in comps:
            adv = comp.get("advantage")
            ol.add_option(
                Option(
                    Content.assemble(
                        (f"{i + 1:>2}", "$text-muted"),
                        ("⌕" if (self.step, number, i) in self._hit_at else " ", "bold $accent"),
                        (f"{fmt_num(adv):>6}", f"bold {sign_style(adv)}"),
                        f" {fmt_num(completion_reward(comp), '5.2f'):>5} ",
                        ("✂" if comp.get("truncated") else "", "bold $warning"),
                        *text_parts(comp, 40),
                    )
                )
            )
        ol.border_title = f"Completions ({self.sort})"
        if comps:
            hit = self.hits[self.hit_pos] if self.hit_pos is not None else None
            wanted = hit.completion if hit is not None and (hit.step, hit.group) == (self.step, number) else None
            ol.highlighted = next((pos for pos, (i, _) in enumerate(comps) if i == wanted), 0)
        self._show_completion()

    def current_completion(self) -> dict | None:
        ol = self.query_one("#insp-completions", OptionList)
        if ol.highlighted is None or ol.highlighted >= len(self.completions):
            return None
        return self.completions[ol.highlighted][1]

    def hides(self, record: dict, group: int, completion: int) -> bool:
        """Whether the zero-std or truncated filter hides this completion of ``record``."""
        groups = record.get("groups") or []
        chosen = groups[group] if group < len(groups) else {}
        comps = chosen.get("completions") or []
        truncated = completion < len(comps) and comps[completion].get("truncated")
        return self.only_zero_std and not is_zero_std(chosen) or self.only_truncated and not truncated

    # -- rendering -----------------------------------------------------------------
    def _header(self) -> None:
        steps = self.index.steps
        if self.step is None:
            text = Content.styled("No sampled groups in this run yet (samples.jsonl is empty).", "$warning")
        else:
            pos = steps.index(self.step) + 1 if self.step in steps else 0
            filters = [f for f, on in (("zero-std only", self.only_zero_std), ("truncated only", self.only_truncated)) if on]
            text = Content.assemble(
                (f" step {self.step} ", "bold reverse $accent"),
                (f"  {pos}/{len(steps)} logged steps", "$text-muted"),
                f"   colour: {self.mode}",
                f"   sort: {self.sort}",
                (f"   filters: {', '.join(filters)}" if filters else "", "$warning"),
                (f"   {len(self.groups)} groups shown", "$text-muted"),
            )
        self.query_one("#insp-header", Static).update(text)

    def _show_completion(self) -> None:
        comp = self.current_completion()
        theme = self.app.theme_variables
        self._show_match()
        episode = self.query_one("#insp-episode", EpisodeView)
        episode.display = comp is not None and is_episode(comp)
        if comp is None:
            empty = "No group matches the filters." if self.record else "Nothing to show."
            self.query_one("#insp-text", Static).update(Content.styled(empty, "$text-muted"))
            for name in ("#insp-legend", "#insp-breakdown", "#insp-tokens"):
                self.query_one(name, Static).update("")
            return
        group = self.current_group() or {}
        prompt = (str(group.get("prompt", "")), "$text-muted")
        if is_episode(comp):  # the prompt, then the turns each in a block of its own
            self.query_one("#insp-text", Static).update(Content.assemble(prompt))
            env = environment_rewards(self.config, comp.get("rewards") or {})
            episode.show(episode_blocks(comp, self.mode, theme, env))
        else:
            self.query_one("#insp-text", Static).update(Content.assemble(prompt, colour_tokens(comp, self.mode, theme)))
        self.query_one("#insp-legend", Static).update(legend(self.mode, theme))
        parts: list = [("\nreward ", "bold"), f"{fmt_num(completion_reward(comp), '.3f')}"]
        for name, value in (comp.get("rewards") or {}).items():
            parts.append(f"   {name} {fmt_num(value, '.3f')}")
        adv = comp.get("advantage")
        parts += ["\n", ("advantage ", "bold"), (fmt_num(adv, "+.3f"), sign_style(adv))]
        parts.append(f"   length {comp.get('length', '—')}")
        if comp.get("truncated"):
            parts.append(("   ✂ truncated", "bold $warning"))
        if group.get("answer") is not None:
            parts.append(f"\nanswer {group.get('answer')}")
        lps = [v for v in comp.get("logprobs") or [] if isinstance(v, (int, float))]
        if lps:
            parts.append(f"   mean log-prob {sum(lps) / len(lps):.3f}")
        for column, value in (comp.get("extra") or {}).items():  # what reward functions sent with log_extra
            text = "—" if value is None else str(value)
            parts += ["\n", (f"{column} ", "bold"), text if len(text) <= 200 else text[:199] + "…"]
        self.query_one("#insp-breakdown", Static).update(Content.assemble(*parts))
        self.query_one("#insp-tokens", Static).update(token_table(comp))

    def _current_key(self) -> tuple[int | None, int | None, int | None]:
        """(step, group, completion) of the completion shown, numbered as in samples.jsonl."""
        ol = self.query_one("#insp-completions", OptionList)
        shown = ol.highlighted is not None and ol.highlighted < len(self.completions)
        return self.step, self.current_group_number(), self.completions[ol.highlighted][0] if shown else None

    # -- events --------------------------------------------------------------------
    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "insp-groups":
            self._fill_completions()
        else:
            self._show_completion()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "insp-groups":
            self.query_one("#insp-completions").focus()

    # -- actions -------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        self.index.refresh()
        steps = self.index.steps
        if not steps:
            return
        pos = steps.index(self.step) if self.step in steps else len(steps) - 1
        self.step = steps[max(0, min(len(steps) - 1, pos + delta))]
        self.load_step()

    def action_goto(self) -> None:
        self.index.refresh()
        if not self.index.steps:
            return

        def done(step: int | None) -> None:
            if step is not None:
                self.step = step
                self.load_step()

        self.app.push_screen(GoToStep(self.index.steps), done)

    def action_colour(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self._header()
        self._show_completion()

    def action_zero_std(self) -> None:
        self.only_zero_std = not self.only_zero_std
        self._fill_groups()

    def action_truncated(self) -> None:
        self.only_truncated = not self.only_truncated
        self._fill_groups()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._fill_completions()
        self._header()

    def action_reward_bench(self) -> None:
        """The selected completion in the reward test bench, with its prompt and answer."""
        from grpo_tui.screens.reward_bench import RewardBenchScreen, bench_config, one_line

        comp = self.current_completion()
        if comp is None:
            self.notify("No completion selected", severity="warning", timeout=2)
            return
        live = getattr(self.app, "live", None)
        same_run = live is not None and Path(live.run_dir).resolve() == self.run_dir.resolve()
        try:
            cfg = bench_config(self.run_dir, live=live if same_run else None)
        except Exception as err:  # noqa: BLE001 - a clear message, never a traceback
            self.notify(f"cannot read the run's reward config: {one_line(err)}", severity="error", timeout=8)
            return
        group = self.current_group() or {}
        columns = {"answer": group["answer"]} if group.get("answer") is not None else {}
        # an episode: its final answer, the text reward functions read from its last message
        text = final_answer(comp) if is_episode(comp) else None
        self.app.push_screen(RewardBenchScreen(cfg, str(group.get("prompt", "")),
                                               str(comp.get("text", "") if text is None else text), columns))


def read_config(run_dir: Path) -> dict:
    """The run's config.yaml as a dict ({} when it is missing or unreadable): the inspector
    reads which environment the run had, to name its reward in an episode's summary."""
    import yaml

    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def token_table(comp: dict) -> Content:
    """Every token with its log-prob, probability and entropy; in an episode, the tokens of
    tool results are marked as not trained on (they have no log-prob)."""
    tokens = comp.get("tokens") or []
    if not tokens:
        return Content("")
    lps = comp.get("logprobs") or []
    hs = comp.get("entropy") or []
    tool = tool_tokens(comp)
    lines = [Content.styled("\n token     logp      p      H", "bold")]
    for i, token in enumerate(tokens[:256]):
        lp = lps[i] if i < len(lps) else None
        h = hs[i] if i < len(hs) else None
        p = math.exp(lp) if isinstance(lp, (int, float)) else None
        row = f" {display_token(token).replace(chr(10), ''):<8} {fmt_num(lp, '7.3f'):>7} {fmt_num(p, '6.3f'):>6} {fmt_num(h, '6.3f'):>6}"
        if tool[i]:
            lines.append(Content.assemble((row, "$text-muted"), ("  tool · not trained on", "italic $text-muted")))
        else:
            lines.append(Content(row))
    return Content("\n").join(lines)
