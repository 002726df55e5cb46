"""The inspector's sample search: a query box, a status line, a worker thread that streams
samples.jsonl, and jumping from hit to hit.

A mixin of :class:`~grpo_tui.screens.inspector.InspectorScreen` (kept apart so each module
stays one idea): it uses the screen's widgets ``#insp-search`` (the box),
``#insp-search-status`` and ``#insp-match``, and its ``index``, ``step``, ``record``,
``_fill_groups``, ``hides`` and ``current_completion``. The matching itself is
:mod:`grpo_tui.model.sample_search`, with no Textual in it.
"""

from __future__ import annotations

import time
from functools import partial

from textual.content import Content
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from grpo_tui.model.sample_search import MAX_HITS, Hit, QueryError, SampleQuery, parse_query, scan, snippet


class SampleSearch:
    """Search state and actions of the inspector (see the module's docstring)."""

    def _init_search(self) -> None:
        self.search_query: SampleQuery | None = None
        self.hits: list[Hit] = []  # found so far, in file order
        self.hit_pos: int | None = None  # the hit shown
        self._hit_at: dict[tuple[int, int, int], int] = {}  # (step, group, completion) -> its place in hits
        self.searching = False
        self._scanned = self._search_steps = 0
        self._search_gen = 0  # a stopped search's late reports are dropped by this

    def _show_match(self) -> None:
        """Above the completion that is a search hit: where its text matched, in context."""
        match = self.query_one("#insp-match", Static)
        pos = self._hit_at.get(self._current_key())  # type: ignore[arg-type]
        comp = self.current_completion()
        match.display = pos is not None and comp is not None
        if not match.display:
            return
        if pos != self.hit_pos:  # reached by moving through the lists
            self.hit_pos = pos
            self._search_status()
        hit, text = self.hits[pos], str(comp.get("text", ""))
        lines = [Content.assemble(("⌕ ", "bold $accent"), before, (found, "bold reverse $warning"), after)
                 for before, found, after in (snippet(text, span) for span in hit.spans[:3])]
        if len(hit.spans) > 3:
            lines.append(Content.styled(f"  and {len(hit.spans) - 3} more matches here", "$text-muted"))
        if not hit.spans:
            lines.append(Content.styled(f"⌕ matches {self.search_query}", "bold $accent"))
        match.update(Content("\n").join(lines))

    # -- search ----------------------------------------------------------------------
    def action_search(self) -> None:
        box = self.query_one("#insp-search", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "insp-search":
            return
        try:
            query = parse_query(event.value)
        except QueryError as err:
            self.notify(str(err), title="Search", severity="error", timeout=8)
            return
        event.input.display = False
        self.query_one("#insp-completions").focus()
        self._start_search(query)

    def _start_search(self, query: SampleQuery) -> None:
        self._search_gen += 1
        self.search_query, self.hits, self.hit_pos, self._hit_at = query, [], None, {}
        self.searching, self._scanned = True, 0
        self.index.refresh()
        self._search_steps = len(self.index.steps)
        self.run_worker(partial(self._scan, query, self._search_gen), thread=True, exclusive=True,
                        group="sample-search", exit_on_error=False)
        self._search_status()

    def _scan(self, query: SampleQuery, gen: int) -> None:
        """In a worker thread: stream samples.jsonl, reporting hits and progress at most ten
        times a second (the first hit at once, so it shows while the scan goes on)."""
        worker = get_current_worker()
        lines, batch, reported, last = 0, [], False, time.monotonic()
        for hits in scan(self.index.path, query):
            if worker.is_cancelled:
                return
            lines += 1
            batch += hits
            if time.monotonic() - last >= 0.1 or batch and not reported:
                if not self._report(gen, lines, batch, False):
                    return
                batch, reported, last = [], reported or bool(batch), time.monotonic()
        if not worker.is_cancelled:
            self._report(gen, lines, batch, True)

    def _report(self, gen: int, lines: int, hits: list[Hit], done: bool) -> bool:
        try:
            self.app.call_from_thread(self._found, gen, lines, hits, done)
            return True
        except RuntimeError:  # the app is closing
            return False

    def _found(self, gen: int, lines: int, new: list[Hit], done: bool) -> None:
        if gen != self._search_gen:
            return
        self._scanned = lines
        for hit in new:
            self._hit_at[(hit.step, hit.group, hit.completion)] = len(self.hits)
            self.hits.append(hit)
        self.searching = not done
        if self.hit_pos is None and self.hits:
            self._jump(0)
        self._search_status()

    def _search_status(self) -> None:
        bar = self.query_one("#insp-search-status", Static)
        bar.display = self.search_query is not None
        if self.search_query is None:
            return
        found = len(self.hits)
        if self.searching:
            where = (f"searching… {self._scanned}/{max(self._scanned, self._search_steps)} steps · "
                     f"{found} hits · Esc stops")
        elif not found:
            where = f"no hits in {self._scanned} steps · / new search"
        else:
            shown = f"hit {self.hit_pos + 1}/{found}" if self.hit_pos is not None else f"{found} hits"
            capped = f" (stopped at the first {MAX_HITS})" if found >= MAX_HITS else ""
            where = f"{shown}{capped} in {self._scanned} steps · n/N next/prev · / new search"
        bar.update(Content.assemble(("⌕ ", "bold $accent"), (str(self.search_query), "bold"),
                                    ("  " + where, "$warning" if not found and not self.searching else "$text-muted")))

    def action_hit(self, delta: int) -> None:
        if not self.hits:
            self.notify("No search hits: / searches every step" if not self.searching else "No hit yet",
                        timeout=3)
            return
        pos = self.hit_pos if self.hit_pos is not None else -delta if delta > 0 else 0
        self._jump((pos + delta) % len(self.hits))

    def _jump(self, pos: int) -> None:
        """Show hit ``pos``: its step, group and completion, the filters that would hide it off."""
        hit = self.hits[pos]
        self.hit_pos = pos
        self.index.refresh()
        record = self.index.load(hit.step)
        if record is None:
            self.notify(f"step {hit.step} is no longer in samples.jsonl", severity="warning", timeout=4)
            return
        if self.hides(record, hit.group, hit.completion):
            self.only_zero_std = self.only_truncated = False
            self.notify("Filters off to show the hit", timeout=3)
        self.step, self.record = hit.step, record
        self._fill_groups(number=hit.group)
        self._search_status()

    def action_back(self) -> None:
        """Esc: stop a running search, else close the search box, else back to the dashboard."""
        box = self.query_one("#insp-search", Input)
        if self.searching:
            self.workers.cancel_group(self, "sample-search")
            self._search_gen += 1
            self.searching = False
            self.notify(f"Search stopped after {self._scanned} steps", timeout=3)
            self._search_status()
        elif box.display:
            box.display = False
            self.query_one("#insp-completions").focus()
        else:
            self.app.pop_screen()
