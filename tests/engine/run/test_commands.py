"""The command channel validates before it acts and never dies: a crafted or broken command
file is discarded with an event, and the run still answers the next command."""

from __future__ import annotations

import json

from engine.run.channel import COMMANDS, ChannelServer, command_problem
from engine.run.control import Control
from engine.run.events import LogEvent


def _server(tmp_path):
    control = Control()
    events: list = []
    control.subscribe(events.append)
    server = ChannelServer(tmp_path, control, lambda: {"state": "running", "step": 1, "max_steps": 2})
    return server, control, events


def _drop(tmp_path, name: str, text: str) -> None:
    (tmp_path / COMMANDS / name).write_text(text)


def test_crafted_commands_are_discarded_with_an_event_and_the_channel_answers_after(tmp_path):
    server, control, events = _server(tmp_path)
    _drop(tmp_path, "1.json", json.dumps({"command": "rm -rf", "args": {}}))
    _drop(tmp_path, "2.json", json.dumps({"command": "adjust", "args": [1, 2]}))
    _drop(tmp_path, "3.json", "{not json")
    _drop(tmp_path, "4.json", json.dumps({"command": "adjust", "args": {"self": 1}}))
    _drop(tmp_path, "5.json", json.dumps({"command": "adjust", "args": {"bad key": 1}}))
    _drop(tmp_path, "6.json", json.dumps({"command": "pause"}))
    assert server.poll() == 6
    discarded = [e.message for e in events if isinstance(e, LogEvent) and e.category == "command"]
    assert len(discarded) == 4, discarded
    assert "unknown command 'rm -rf'" in discarded[0]
    assert "arguments must be an object" in discarded[1]
    assert "not a JSON object" in discarded[2]
    assert "setting names must be identifiers" in discarded[3]
    # a name the trainer does not know reaches it as data, and its validation rejects it there
    assert control.take_adjustments() == {"self": 1}
    assert control.paused_requested  # the channel is alive: the last command was applied
    assert not list((tmp_path / COMMANDS).iterdir())


def test_a_linked_commands_folder_is_never_read_or_emptied(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.json").write_text(json.dumps({"command": "stop"}))
    run = tmp_path / "run"
    run.mkdir()
    (run / COMMANDS).symlink_to(elsewhere)
    server, control, events = _server(run)
    assert server.poll() == 0 and server.poll() == 0
    assert (elsewhere / "keep.json").exists() and not control.stop_requested
    warnings = [e for e in events if isinstance(e, LogEvent) and "symbolic link" in e.message]
    assert len(warnings) == 1


def test_command_problem_accepts_what_send_writes():
    assert command_problem({"command": "adjust", "args": {"learning_rate": 1e-5}}) is None
    assert command_problem({"command": "reload_rewards", "args": {}}) is None
    assert command_problem({"command": "adjust", "args": {}}) == "adjust: no setting to change"
