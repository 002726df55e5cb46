"""Searching samples in the inspector: `/` opens the box, Enter searches every step in a worker,
the first hit is shown with its match highlighted, `n`/`N` move between hits, Esc stops a search."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from grpo_tui.app import GrpoApp
from grpo_tui.screens import inspector_search
from grpo_tui.screens.inspector import InspectorScreen

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"


def completion(text: str, reward: float, advantage: float, length: int = 5) -> dict:
    return {"text": text, "reward": reward, "rewards": {"accuracy": reward}, "advantage": advantage,
            "length": length, "truncated": False}


def run_with_samples(tmp_path: Path) -> Path:
    """The recorded run with samples.jsonl replaced: four steps, 'answer is' in steps 2 and 4."""
    run = tmp_path / "run"
    shutil.copytree(RECORDED, run)
    steps = {
        1: [[completion("no idea", 0.0, -0.5), completion("maybe 7", 1.0, 0.5)]],
        2: [[completion("x", 0.0, 0.0)], [completion("so 3", 0.0, -1.0), completion("the answer is 12", 1.0, 1.0)]],
        3: [[completion("nothing here", 0.0, 0.0, length=300)]],
        4: [[completion("The Answer Is 5", 0.0, -0.7), completion("hm", 1.0, 0.7)]],
    }
    lines = [json.dumps({"step": s, "groups": [{"prompt": f"q{s}.{g}: ", "completions": c} for g, c in enumerate(gs)]})
             for s, gs in steps.items()]
    (run / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run


async def until(pilot, predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def search(pilot, query: str) -> InspectorScreen:
    screen = pilot.app.screen
    await pilot.press("slash")
    await pilot.press(*query)
    await pilot.press("enter")
    await until(pilot, lambda: not screen.searching, "the search to end")
    await pilot.pause(0.1)
    return screen


def shown(screen: InspectorScreen) -> tuple:
    """(step, group, completion text) on screen, and the match line's text."""
    match = screen.query_one("#insp-match")
    return (screen.step, screen.current_group_number(), screen.current_completion()["text"],
            str(match.render()) if match.display else None)


def test_search_jumps_to_each_hit_and_highlights_it(tmp_path: Path) -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(run_with_samples(tmp_path)), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("i")
            screen = app.screen
            assert isinstance(screen, InspectorScreen) and screen.step == 4
            await search(pilot, "answer is")
            assert len(screen.hits) == 2  # smartcase: lower case finds "The Answer Is" too
            step, group, text, match = shown(screen)
            assert (step, group, text) == (2, 1, "the answer is 12") and "answer is" in match
            status = str(screen.query_one("#insp-search-status").render())
            assert "hit 1/2" in status and "in 4 steps" in status
            await pilot.press("n")
            assert shown(screen)[:3] == (4, 0, "The Answer Is 5")
            await pilot.press("n")  # round to the first
            assert shown(screen)[:3] == (2, 1, "the answer is 12")
            await pilot.press("N")
            assert shown(screen)[:3] == (4, 0, "The Answer Is 5")

            # filters: a range per field, and with a regex
            await search(pilot, "reward>0.5 adv<=0.6")
            assert [(h.step, h.group, h.completion) for h in screen.hits] == [(1, 0, 1)]
            assert shown(screen)[:3] == (1, 0, "maybe 7")
            await search(pilot, "len>100")
            assert shown(screen)[:3] == (3, 0, "nothing here")
            await search(pilot, r"/\d+$/ adv<0")
            assert [(h.step, h.completion) for h in screen.hits] == [(2, 0), (4, 0)]

            # a filter that would hide the hit is turned off to show it
            await pilot.press("x")  # truncated only: none here
            await search(pilot, "hm")
            assert not screen.only_truncated and shown(screen)[:3] == (4, 0, "hm")

            # nothing found, and a query that cannot run: the box stays open with a message
            await search(pilot, "zebra")
            assert screen.hits == [] and "no hits in 4 steps" in str(screen.query_one("#insp-search-status").render())
            await pilot.press("slash", *"reward>abc", "enter")
            await pilot.pause(0.1)
            assert screen.query_one("#insp-search").display
            assert any("expected a number" in n.message for n in app._notifications)
            await pilot.press("escape")  # closes the box
            assert app.screen is screen and not screen.query_one("#insp-search").display
            await pilot.press("escape")  # back to the dashboard
            assert app.screen is not screen

    asyncio.run(go())


def test_escape_stops_a_running_search_and_keeps_its_hits(tmp_path: Path, monkeypatch) -> None:
    """A file too big to scan at once: the status counts steps, Esc stops the worker."""
    real_scan = inspector_search.scan

    def endless(path, query):
        yield from real_scan(path, query)  # the real hits first ...
        while True:  # ... then a file that never ends
            time.sleep(0.01)
            yield []

    monkeypatch.setattr(inspector_search, "scan", endless)

    async def go() -> None:
        app = GrpoApp(run_dir=str(run_with_samples(tmp_path)), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("i")
            screen = app.screen
            await pilot.press("slash", *"answer", "enter")
            await until(pilot, lambda: len(screen.hits) == 2 and screen._scanned > 10, "hits while it scans")
            assert screen.searching and "searching…" in str(screen.query_one("#insp-search-status").render())
            assert screen.step == 2  # the first hit is shown while the scan goes on
            await pilot.press("escape")
            assert not screen.searching and app.screen is screen
            await until(pilot, lambda: not any(w.is_running for w in screen.workers), "the worker to stop")
            await pilot.press("n")
            assert screen.step == 4

    asyncio.run(go())


def test_search_palette_entries(tmp_path: Path) -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(run_with_samples(tmp_path)), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("i")
            screen = app.screen
            await pilot.press("ctrl+p", *"search samples")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause(0.1)
            assert screen.query_one("#insp-search").has_focus

    asyncio.run(go())


def test_inspector_search_snapshot(snap_compare) -> None:
    """80x24: a regex search on the recorded run, its first hit shown with the match marked."""

    async def run_before(pilot) -> None:
        await pilot.press("i")
        await search(pilot, "/[a-z]/ reward<1")
        await pilot.pause(0.3)

    app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_search_from_the_dashboard_palette(tmp_path: Path) -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(run_with_samples(tmp_path)), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("ctrl+p", *"search samples")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, InspectorScreen)
                        and app.screen.query_one("#insp-search").has_focus, "the search box")
            await pilot.press(*"answer", "enter")
            screen = app.screen
            await until(pilot, lambda: screen.search_query is not None and not screen.searching, "the search")
            assert screen.step == 2 and len(screen.hits) == 2

    asyncio.run(go())
