"""Episodes of a run with tools in the dashboard and the inspector: the samples pane shows
an episode's shape and final answer, the inspector shows it turn by turn (calls, results not
trained on, errors in the error colour, a summary), and the tools charts join the training
tab only for a run that logs tools/* metrics.

Fed from tests/data/recorded-agent-run (rebuilt by tests/data/make_recorded_agent_run.py),
whose last step's first group, 347+589=, holds a direct answer, a call that returns, a call
of an unknown tool and a malformed call; its second group a call after some text, a
timed-out call and an episode stopped by the tool limit.
"""

from __future__ import annotations

import asyncio
import doctest
import json
from pathlib import Path

import pytest
from textual.color import Color
from textual.widgets import OptionList, Static

from grpo_tui.app import GrpoApp
from grpo_tui.screens.dashboard import DashboardScreen
from grpo_tui.screens.inspector import InspectorScreen, token_table
from grpo_tui.screens.metric_picker import MetricPickerScreen
from grpo_tui.widgets import episode
from grpo_tui.widgets.charts.chart import MetricChart
from grpo_tui.widgets.episode_view import EpisodeView

DATA = Path(__file__).resolve().parents[1] / "data"
AGENT_RUN = DATA / "recorded-agent-run"
PLAIN_RUN = DATA / "recorded-run"
SIZE = (120, 36)
SMALL = (80, 24)
TOOL_METRICS = ["tools/call_frequency", "tools/failure_frequency", "tools/limit_ratio", "tools/masked_tokens_mean",
                "tools/parse_error_frequency", "tools/timeout_frequency", "tools/turns_mean"]


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch) -> None:
    """Saved chart choices of the user's own never change what a test shows."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def agent_app() -> GrpoApp:
    return GrpoApp(run_dir=str(AGENT_RUN), clock=lambda: 0.0)


def last_step_groups() -> list[dict]:
    lines = (AGENT_RUN / "samples.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["groups"]


async def settle(pilot) -> None:
    await pilot.pause(0.5)  # the charts draw on the dashboard's timer


async def open_completion(pilot, position: int) -> InspectorScreen:
    """The inspector on the last step's first group, its completion at ``position`` selected."""
    await pilot.press("i")
    inspector = pilot.app.screen
    assert isinstance(inspector, InspectorScreen)
    inspector.query_one("#insp-completions", OptionList).highlighted = position
    await pilot.pause(0.1)
    return inspector


def blocks(inspector: InspectorScreen) -> list[Static]:
    return inspector.query_one("#insp-episode", EpisodeView).blocks()


def test_the_samples_pane_shows_an_episodes_calls_and_final_answer() -> None:
    async def go() -> None:
        async with agent_app().run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            lines = str(pilot.app.screen.query_one("#side-samples").query_one(Static).render()).splitlines()
            mine = [line for line in lines if line.startswith("   ")]
            assert len(mine) == 8  # one line per completion, however many turns
            assert mine[0].endswith(" ⚒0 936")  # a direct answer
            assert mine[1].endswith(" ⚒1 936")  # one call, then the final answer (not the call's JSON)
            assert mine[2].endswith(" ⚒1✗1 946")  # the call failed
            assert " ⚒0⁉ " in mine[3] and "tool_call" not in mine[3]  # a malformed call: no answer
            assert " ⚒2↻ " in mine[7]  # the tool limit

    asyncio.run(go())


def test_the_inspector_shows_a_call_its_result_not_trained_on_and_the_summary() -> None:
    async def go() -> None:
        app = agent_app()
        async with app.run_test(size=SIZE) as pilot:
            inspector = await open_completion(pilot, 1)
            shown = blocks(inspector)
            assert [b.has_class("-summary") for b in shown] == [True, False, False, False]
            summary = str(shown[0].render())
            assert summary.startswith("1 call · 0 failed · 2 turns · 5 tool tokens · stop: answered")
            assert "CalculatorEnv 1.00" in summary  # the environment's reward
            call, result, answer = (str(b.render()) for b in shown[1:])
            assert call.startswith("assistant 1 · ⚒ 1 call") and "⚒ add(a=347, b=589)" in call
            assert result.startswith("tool add → 936 · not trained on") and shown[2].has_class("-tool")
            assert answer.startswith("assistant 2 · answer") and answer.endswith("936⟨eos⟩")
            secondary, primary = (Color.parse(app.theme_variables[k]) for k in ("secondary", "primary"))
            assert shown[2].styles.border_left[1] == secondary and shown[1].styles.border_left[1] == primary
            # the token table marks the tool's tokens, and only those
            table = str(inspector.query_one("#insp-tokens").render()).splitlines()
            marked = [line for line in table if line.endswith("tool · not trained on")]
            assert len(marked) == 5 and marked[0].startswith(" ⟨tool_response⟩") and "—" in marked[1]

    asyncio.run(go())


def test_the_inspector_shows_failed_and_malformed_calls_in_the_error_colour() -> None:
    async def go() -> None:
        app = agent_app()
        async with app.run_test(size=SIZE) as pilot:
            error = Color.parse(app.theme_variables["error"])
            inspector = await open_completion(pilot, 2)  # an unknown tool
            failed = blocks(inspector)[2]
            text = str(failed.render())
            assert text.startswith("tool mul ✗ unknown tool 'mul' · not trained on")
            assert failed.has_class("-tool-error") and failed.styles.border_left[1] == error
            label = failed.render()
            assert any(span.style == "bold $error" and label.plain[span.start:span.end] == " ✗ unknown tool 'mul'"
                       for span in label.spans)
            assert "1 failed" in str(blocks(inspector)[0].render())

            inspector.query_one("#insp-completions", OptionList).highlighted = 3  # a malformed call
            await pilot.pause(0.1)
            summary, turn = blocks(inspector)
            assert "stop: parse error" in str(summary.render())
            assert turn.has_class("-error") and turn.styles.border_left[1] == error
            assert "✗ parse error: invalid JSON in <tool_call>" in str(turn.render())

    asyncio.run(go())


def test_a_completion_without_turns_shows_as_before() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(PLAIN_RUN), clock=lambda: 0.0)
        async with app.run_test(size=SIZE) as pilot:
            inspector = await open_completion(pilot, 0)
            assert not inspector.query_one("#insp-episode").display
            assert "tool" not in str(inspector.query_one("#insp-tokens").render())

    asyncio.run(go())


def test_the_token_table_of_an_episode_marks_every_tool_token() -> None:
    comp = last_step_groups()[1]["completions"][3]  # the tool limit: two results
    rows = str(token_table(comp)).splitlines()[2:]
    tools = [t for turn in comp["turns"] if turn["role"] == "tool" for t in range(turn["start"], turn["end"])]
    assert [i for i, row in enumerate(rows) if row.endswith("not trained on")] == tools


def test_the_episode_helpers_worked_examples() -> None:
    result = doctest.testmod(episode, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0


def test_the_tools_charts_come_only_with_tools_metrics() -> None:
    async def charts(run_dir: Path) -> list[str]:
        app = GrpoApp(run_dir=str(run_dir), clock=lambda: 0.0)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("2")
            await settle(pilot)
            screen: DashboardScreen = app.screen
            return [c.spec.title for c in screen.query("#grid-training MetricChart") if c.display]

    with_tools = asyncio.run(charts(AGENT_RUN))
    assert with_tools[-2:] == ["tools", "episodes"]
    without = asyncio.run(charts(PLAIN_RUN))
    assert "tools" not in without and "episodes" not in without and len(without) == len(with_tools) - 2


def test_the_tools_charts_join_when_a_run_logs_its_first_tools_metric() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(PLAIN_RUN), clock=lambda: 0.0)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("2")
            await settle(pilot)
            screen: DashboardScreen = app.screen
            assert not screen.query("#chart-tools0")
            record = json.loads((PLAIN_RUN / "metrics.jsonl").read_text().splitlines()[-1])
            screen.model.add_metrics({"step": record["step"] + 1, "time": record["time"] + 1,
                                      "tools/call_frequency": 1.5, "tools/failure_frequency": 0.25})
            for _ in range(100):  # the next tick mounts them, and they draw once laid out
                await pilot.pause(0.1)
                if screen.query("#chart-tools0") and screen.query_one("#chart-tools0", MetricChart).has_data:
                    break
            chart = screen.query_one("#chart-tools0", MetricChart)
            assert chart.display and chart in screen.visible_charts() and chart.has_data

    asyncio.run(go())


def test_the_tools_chart_draws_calls_and_failures_and_the_picker_lists_every_tools_metric() -> None:
    async def go() -> None:
        app = agent_app()
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("2")
            await settle(pilot)
            chart = app.screen.query_one("#chart-tools0", MetricChart)
            assert [name for name, _ in chart.spec.expand(app.screen.model)] == [
                "tools/call_frequency", "tools/failure_frequency", "tools/timeout_frequency"]
            assert chart.has_data and "━calls" in str(chart.header_text(200))
            chart.focus()
            await pilot.press("e")
            picker = app.screen
            assert isinstance(picker, MetricPickerScreen)
            options = picker.query_one("#picker-list")
            names = [options.get_option_at_index(i).value for i in range(options.option_count)]
            assert [n for n in names if n.startswith("tools/")] == TOOL_METRICS

    asyncio.run(go())


def test_inspector_episode_snapshot(snap_compare) -> None:
    """The call of an unknown tool: the call, the failed result, the answer after it."""
    assert snap_compare(agent_app(), terminal_size=SIZE, press=["i", "tab", "down", "down"], run_before=settle)


def test_inspector_episode_snapshot_small_terminal(snap_compare) -> None:
    """At 80x24 the summary and the first turns fit beside the lists."""
    assert snap_compare(agent_app(), terminal_size=SMALL, press=["i", "tab", "down"], run_before=settle)


CALCULATOR_RUN = DATA / "recorded-calculator-run"  # real: tests/data/make_recorded_calculator_run.py


def test_inspector_snapshot_of_a_real_calculator_episode(snap_compare) -> None:
    """A recorded run of the bundled calculator agent: the model's call of add, the tool's
    result (not trained on) and the answer it copied, coloured by log-prob."""
    app = GrpoApp(run_dir=str(CALCULATOR_RUN), clock=lambda: 0.0)
    assert snap_compare(app, terminal_size=SIZE, press=["i", "tab"], run_before=settle)


def test_the_recorded_calculator_run_is_real_episodes() -> None:
    """Its samples hold the engine's episode records: turns that cover every token, tool tokens
    without log-probs, the environment's reward beside accuracy."""
    record = json.loads((CALCULATOR_RUN / "samples.jsonl").read_text().splitlines()[-1])
    comps = [c for g in record["groups"] for c in g["completions"]]
    called = [c for c in comps if c["episode"]["calls"]]
    assert called and set(comps[0]["rewards"]) == {"accuracy", "CalculatorEnv"}
    for c in called:
        turns = c["turns"]
        assert turns[0]["start"] == 0 and turns[-1]["end"] == c["length"]
        assert all(a["end"] == b["start"] for a, b in zip(turns, turns[1:]))
        tool = next(t for t in turns if t["role"] == "tool")
        assert c["tokens"][tool["start"]] == "<tool_response>"
        assert all(v is None for v in c["logprobs"][tool["start"]:tool["end"]])
